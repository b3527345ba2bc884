"""The one NinjaAPI root. Each app mounts its own Router here."""
from django.db import connection
from ninja import NinjaAPI, Schema
from ninja.security import django_auth

api = NinjaAPI(
    title="Atrium API",
    version="1",
    auth=django_auth,
    urls_namespace="api",
    docs_url="/docs",
)


class HealthOut(Schema):
    status: str
    database: bool


@api.get("/health", auth=None, response=HealthOut, tags=["system"])
def health(request):
    """Liveness for load balancers: answers when the process and its database answer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        ok = cursor.fetchone() == (1,)
    return {"status": "ok" if ok else "degraded", "database": ok}


from accounts.api import router as accounts_router  # noqa: E402

api.add_router("/", accounts_router)

from chat.library_api import router as library_router  # noqa: E402

api.add_router("/", library_router)
