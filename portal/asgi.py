"""ASGI entry point: HTTP through Django, websockets through channels (auth + origin checked)."""
import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


def freeze_start_up_heap() -> None:
    """Load the URL conf (the views and API routers) and move every object alive now out of the
    garbage collector's sight (`gc.freeze`). They live as long as the process, and every full
    collection would walk them all: a request that builds many objects, such as the chat page of
    a long conversation, spent about half its time in such collections (bench/page.py)."""
    get_resolver().url_patterns  # noqa: B018  (imports every view module now)
    gc.collect()
    gc.freeze()


freeze_start_up_heap()
