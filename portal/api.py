"""The one NinjaAPI root. Each app mounts its own Router here, and domain errors are mapped to HTTP
here, once: every error answers `{"error": {"code": ..., "message": ..., ...}}`."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError

from accounts.auth import key_or_session
from chat.errors import ChatError, Forbidden, InvalidRequest, NotFound

# Authenticated unless a route says otherwise (auth=None): a new route cannot be public by accident.
api = NinjaAPI(
    title="Atrium API",
    version="1",
    auth=key_or_session,
    urls_namespace="api",
    docs_url="/docs",
)

# chat.errors codes -> status; a code not listed is a bad request
CHAT_ERROR_STATUS = {
    "forbidden": 403,
    "not_found": 404,
    "invalid": 422,
    "balance": 402,
    "busy": 409,
    "not_running": 409,
}
CHAT_ERROR_KINDS = ((Forbidden, 403), (NotFound, 404), (InvalidRequest, 422))
HTTP_ERROR_CODES = {
    400: "bad_request", 401: "unauthenticated", 402: "balance", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 422: "invalid", 429: "rate_limited",
}


def error_response(request: HttpRequest, status: int, code: str, message: str, **extra: Any) -> HttpResponse:
    return api.create_response(request, {"error": {"code": code, "message": message, **extra}}, status=status)


@api.exception_handler(ChatError)
def chat_error(request: HttpRequest, exc: ChatError) -> HttpResponse:
    status = CHAT_ERROR_STATUS.get(exc.code)
    if status is None:  # a kind of its own (e.g. import_failed): the status of the kind it is
        status = next((code for kind, code in CHAT_ERROR_KINDS if isinstance(exc, kind)), 400)
    return error_response(request, status, exc.code, exc.message)


@api.exception_handler(AuthenticationError)
def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(request, 401, "unauthenticated", "Sign in, or send a personal API key as a Bearer token.")


@api.exception_handler(AuthorizationError)
@api.exception_handler(PermissionDenied)
def forbidden(request: HttpRequest, exc: Exception) -> HttpResponse:
    return error_response(request, 403, "forbidden", str(exc) or "You may not do this.")


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    # (get_object_or_404's message names the model and query: not for clients)
    return error_response(request, 404, "not_found", "Not found.")


@api.exception_handler(ValidationError)
def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return error_response(request, 422, "invalid", "The request is not valid.", detail=exc.errors)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = HTTP_ERROR_CODES.get(exc.status_code, "error")
    return error_response(request, exc.status_code, code, exc.message)


class HealthOut(Schema):
    status: str
    database: bool


@api.get("/health", auth=None, response=HealthOut, tags=["system"])
def health(request: HttpRequest) -> dict[str, Any]:
    """Liveness for load balancers: answers when the process and its database answer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        ok = cursor.fetchone() == (1,)
    return {"status": "ok" if ok else "degraded", "database": ok}


from portal.ratelimit import RateLimited  # noqa: E402


@api.exception_handler(RateLimited)
def rate_limited(request, exc: RateLimited):
    """A role's rate limit (portal.ratelimit): 429 with Retry-After."""
    response = api.create_response(request, {"error": {"code": "rate_limited", "message": str(exc)}}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


from accounts.api import router as accounts_router  # noqa: E402
from billing.api import router as billing_router  # noqa: E402
from chat.api import router as chat_router  # noqa: E402
from endpoints.api import router as endpoints_router  # noqa: E402

api.add_router("/", accounts_router)
api.add_router("/", endpoints_router)
api.add_router("/", billing_router)
api.add_router("/", chat_router)

from chat.library_api import router as library_router  # noqa: E402

api.add_router("/", library_router)
