"""The floor of the stack: a bare streaming proxy on the libraries Atrium is built on.

    daphne bench.floor:application        (bench/ttft.py --floor starts it)

A websocket that, for each `send` frame, streams an answer from the configured upstream through
Atrium's own provider path (`endpoints.http`'s pooled httpx client, the
OpenAI Chat Completions adapter and its SSE parsing) and forwards the text as `delta` frames
through channels and daphne — the first at once, then merged at most every
`chat.live.BATCH_SECONDS`, as Atrium sends them — then a `done` frame. Nothing else: no sign-in,
no permission or balance check, no database rows, no billing, no Redis, no joining of live
answers, no stop.

It is not a product and serves nothing but the benchmark: the time it adds over calling the
upstream directly is what any answer costs on this stack (daphne, autobahn, channels, httpx,
h11) on this machine before Atrium does anything of its own, so it shows which part of
Atrium's figure is Atrium's and which is the stack's.
"""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from chat.consumers import ChatConsumer  # noqa: E402
from chat.live import BATCH_SECONDS  # noqa: E402
from endpoints.adapters.base import Shape  # noqa: E402
from endpoints.adapters.openai_chat import OpenAIChatAdapter  # noqa: E402
from endpoints.adapters.types import Call, ChatMessage, ChatRequest, StreamError, TextDelta  # noqa: E402

ADAPTER = OpenAIChatAdapter()
_answers: set[asyncio.Task[None]] = set()


class FloorConsumer(AsyncWebsocketConsumer):
    # Atrium's dispatch: without channels' close_old_connections before every message (a hop to
    # the database thread that Atrium's consumer does not make either).
    dispatch = ChatConsumer.dispatch

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        upstream = os.environ.get("FLOOR_UPSTREAM_URL")  # the upstream's /v1/chat/completions
        if not upstream:
            await self.send(text_data=json.dumps({"type": "error", "message": "FLOOR_UPSTREAM_URL is not set"}))
            return
        # The request as Atrium's adapter lays it out (headers, body, stream_options), minus shaping.
        request = ChatRequest(model=str(frame.get("model", "")),
                              messages=[ChatMessage(role="user", content=str(frame.get("text", "")))])
        shape = Shape(request=request, base_url=upstream)
        call = Call(
            endpoint_name="Bench upstream", model=request.model, url=upstream,
            headers={**ADAPTER.base_headers(stream=True), **ADAPTER.auth_headers(api_key="sk-bench-key-123456", auth_kind="api_key")},
            body=ADAPTER.finalize(ADAPTER.body(shape), shape, dropped=[]),
        )
        task = asyncio.get_running_loop().create_task(self.answer(call))
        _answers.add(task)  # (the loop keeps only a weak reference to a task)
        task.add_done_callback(_answers.discard)

    async def answer(self, call: Call) -> None:
        pending: dict[str, Any] | None = None
        first = True
        flushing: asyncio.TimerHandle | None = None
        sending: asyncio.Future[None] | None = None

        def flush() -> None:
            nonlocal pending, flushing, sending
            frame, pending, flushing = pending, None, None
            sending = asyncio.ensure_future(self.send(text_data=json.dumps(frame)))

        async for event in ADAPTER.run(call):
            if isinstance(event, TextDelta):
                if first:
                    first = False
                    await self.send(text_data=json.dumps({"type": "delta", "text": event.text}))
                elif pending is None:
                    pending = {"type": "delta", "text": event.text}
                    flushing = asyncio.get_running_loop().call_later(BATCH_SECONDS, flush)
                else:
                    pending["text"] += event.text
            elif isinstance(event, StreamError):
                await self.send(text_data=json.dumps({"type": "error", "message": event.message, "message_id": ""}))
        if flushing is not None:
            flushing.cancel()
            flush()
        if sending is not None:
            await sending  # (the last delta before done)
        await self.send(text_data=json.dumps({"type": "done"}))


async def health(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 on any HTTP request (tests.daphne.Daphne waits for /api/health)."""
    while scope["type"] == "http":
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


application = ProtocolTypeRouter({
    "http": health,
    "websocket": URLRouter([path("ws/chat/", FloorConsumer.as_asgi())]),
})
