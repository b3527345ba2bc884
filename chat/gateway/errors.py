"""Gateway errors: one exception with an HTTP status, written in the caller's format."""
from __future__ import annotations

from typing import Any

from chat.errors import ChatError
from endpoints.adapters.types import StreamError

# our ChatError codes → HTTP status
STATUS_OF_CODE = {
    "forbidden": 403,
    "not_found": 404,
    "balance": 402,
    "invalid": 400,
    "model_ambiguous": 400,
    "busy": 409,
}
OPENAI_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
    403: "permission_error", 404: "invalid_request_error", 409: "invalid_request_error",
    413: "invalid_request_error", 429: "rate_limit_error",
}
ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 409: "invalid_request_error",
    413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error",
}


class GatewayError(Exception):
    def __init__(self, status: int, message: str, *, code: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @classmethod
    def from_chat(cls, exc: ChatError) -> GatewayError:
        return cls(STATUS_OF_CODE.get(exc.code, 400), exc.message, code=exc.code)

    @classmethod
    def from_stream(cls, error: StreamError) -> GatewayError:
        """An upstream failure before any output: 429 passed on with its retry-after, a timeout
        504, anything else 502 (the upstream, not the caller, failed)."""
        if error.kind == "rate_limit":
            return cls(429, error.message, code="upstream_rate_limit", retry_after=error.retry_after or 1)
        if error.kind == "timeout":
            return cls(504, error.message, code="upstream_timeout")
        return cls(502, error.message, code=f"upstream_{error.kind}")

    @property
    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}

    def openai_body(self) -> dict[str, Any]:
        return {"error": {
            "message": str(self), "type": OPENAI_TYPES.get(self.status, "api_error"), "param": None,
            "code": self.code or None,
        }}

    def anthropic_body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(self.status, "api_error"), "message": str(self)}}
