"""Atrium's demo model: a small OpenAI-compatible upstream served by Atrium itself.

`make run` gives a newcomer a first chat that answers with no provider key and no local model
server: `python manage.py bootstrap` creates the endpoint "Atrium demo" whose baseURL is
`SITE_URL/demo/v1`, so a chat turn calls this module over HTTP exactly as it calls a real provider
(the same adapter, the same SSE wire format with usage in the last chunk, the same billing). The
answer says it is a demo and how to add a real provider.

Async views: a turn streaming from daphne calls back into the same daphne, and the answer is
written from the event loop without holding a thread. Token counts are estimates (about four
characters a token), as a demo needs; nothing is stored.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

MODEL = "atrium-demo"
# The catalogue key of the endpoint `bootstrap` creates: marks it as the demo in the admin (its
# name may be changed).
CATALOGUE_KEY = "atrium-demo"
# Between two chunks of the streamed answer: fast, yet visibly streaming in the chat.
CHUNK_SECONDS = 0.02
WORDS_PER_CHUNK = 3
QUOTE_CHARS = 200


def demo_answer(question: str) -> str:
    """The demo's reply to `question` (the newest user message)."""
    question = " ".join(question.split())
    if len(question) > QUOTE_CHARS:
        question = question[: QUOTE_CHARS - 1] + "…"
    quoted = f"You wrote: “{question}”.\n\n" if question else ""
    return (
        "**This is Atrium's demo model**, served by Atrium itself: no AI provider is connected yet, "
        "so it can only answer with this note.\n\n"
        f"{quoted}"
        "To chat with a real model, an administrator opens **Admin → Endpoints → Add from provider "
        "catalogue**, picks a provider (OpenAI, Anthropic, Groq, a local Ollama, …) and pastes its API "
        "key; the new endpoint then appears in the model selector (or make it the default model spec)."
    )


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": …}, …]
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": {"message": message, "type": "invalid_request_error"}}, status=status)


@require_GET
async def models(request: HttpRequest) -> JsonResponse:
    """`GET /demo/v1/models`, OpenAI's list format."""
    return JsonResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "atrium"}]})


@csrf_exempt  # an API for programs (the chat turn), not a form: no session, no cookie
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponse:
    """`POST /demo/v1/chat/completions`: streamed (SSE) or not, as the request asks."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _error("The request body is not JSON.")
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return _error("'messages' must be a list of message objects.")
    question = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    answer = demo_answer(question)
    usage = {
        "prompt_tokens": sum(4 + estimate_tokens(_text_of(m.get("content"))) for m in messages),
        "completion_tokens": estimate_tokens(answer),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    model = str(body.get("model") or MODEL)
    if not body.get("stream"):
        return JsonResponse({
            "id": f"chatcmpl-demo-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": usage,
        })
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    response = StreamingHttpResponse(
        _stream(answer, model=model, usage=usage if include_usage else None), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    return response


async def _stream(answer: str, *, model: str, usage: dict[str, int] | None) -> AsyncIterator[bytes]:
    """The answer as Chat Completions chunks: the role, the text a few words at a time, the finish
    reason, then (when asked) a chunk with the usage and no choices, and `[DONE]`."""
    base = {"id": f"chatcmpl-demo-{uuid.uuid4().hex[:12]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    words = answer.split(" ")
    for start in range(0, len(words), WORDS_PER_CHUNK):
        await asyncio.sleep(CHUNK_SECONDS)
        piece = " ".join(words[start:start + WORDS_PER_CHUNK])
        if start + WORDS_PER_CHUNK < len(words):
            piece += " "
        yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if usage is not None:
        yield event([], usage=usage)
    yield b"data: [DONE]\n\n"
