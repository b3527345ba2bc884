"""The gateway's floor: a bare pass-through on Atrium's server stack.

    daphne bench.gateway_floor:application        (bench/gateway.py starts it)

`POST /floor/v1/chat/completions` forwards the request body to FLOOR_UPSTREAM_URL (the upstream's
/v1/chat/completions) through Atrium's pooled httpx client (`endpoints.http`) and returns the
upstream's answer as it comes (streamed for a stream), in Django's ASGI handler with Atrium's
middleware under daphne. Nothing else: no key, no permission or balance check, no turn, no
parsing, no billing, no Redis. What it adds over calling the upstream directly is what any
gateway call costs on this stack; Atrium's own share is the rest. Not a product: the benchmark's.
"""
from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from endpoints import http  # noqa: E402

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-floor"}


@csrf_exempt
async def passthrough(request: HttpRequest) -> HttpResponse:
    upstream = os.environ["FLOOR_UPSTREAM_URL"]
    if b'"stream": true' not in request.body and b'"stream":true' not in request.body:
        answer = await http.request("POST", upstream, content=request.body, headers=HEADERS)
        return HttpResponse(answer.content, status=answer.status_code, content_type="application/json")

    async def chunks():
        async with http.stream("POST", upstream, content=request.body, headers=HEADERS) as answer:
            async for chunk in answer.aiter_raw():
                yield chunk

    return StreamingHttpResponse(chunks(), content_type="text/event-stream")


from portal.urls import urlpatterns as portal_urlpatterns  # noqa: E402

# Atrium's own routes stay (its middleware names some of them; tests.daphne waits for /api/health).
urlpatterns = [path("floor/v1/chat/completions", passthrough), *portal_urlpatterns]
settings.ROOT_URLCONF = __name__
application = get_asgi_application()
