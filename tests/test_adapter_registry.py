"""The adapter registry is the one list of wire protocols; Azure is an adapter of its own; the
hooks a protocol unlike OpenAI's needs (request signing, a stream that is not SSE) are there."""
from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from endpoints import http
from endpoints.adapters import ADAPTERS, adapter_for
from endpoints.adapters.azure_openai import AzureOpenAIAdapter
from endpoints.adapters.base import StreamState
from endpoints.adapters.openai_chat import OpenAIChatAdapter
from endpoints.adapters.types import Call, Event, Finish, TextDelta
from endpoints.models import Endpoint, Kind, Protocol
from tests.streaming import final, text_of

REGISTERED = [(protocol, adapter.label) for protocol, adapter in ADAPTERS.items()]


def test_the_wire_protocol_choices_are_the_registrys():
    assert Endpoint._meta.get_field("provider").choices == REGISTERED
    assert [protocol for protocol, _label in REGISTERED] == ["openai_chat", "anthropic", "openai_responses", "azure_openai"]


@pytest.mark.django_db
def test_the_admin_offers_every_registered_protocol(admin_client):
    page = admin_client.get(reverse("admin:endpoints_endpoint_add")).content.decode()

    for protocol, label in REGISTERED:
        assert f'<option value="{protocol}"' in page and label in page.replace("&lt;", "<").replace("&gt;", ">")


@pytest.mark.django_db
def test_validation_refuses_a_protocol_nobody_registered(make_endpoint):
    endpoint = make_endpoint()
    endpoint.provider = "gemini_native"

    with pytest.raises(ValidationError) as refused:
        endpoint.full_clean()

    assert "provider" in refused.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize("asked", [Protocol.OPENAI_CHAT, Protocol.AZURE_OPENAI])
def test_an_azure_endpoint_is_served_by_the_azure_adapter(make_endpoint, asked):
    endpoint = make_endpoint(kind=Kind.AZURE_OPENAI, provider=asked)

    adapter = adapter_for(Endpoint.objects.get(pk=endpoint.pk).provider)

    assert isinstance(adapter, AzureOpenAIAdapter) and isinstance(adapter, OpenAIChatAdapter)


@pytest.mark.django_db
def test_a_custom_endpoint_may_speak_azure(make_endpoint, upstream):
    from tests.streaming import run_chat

    endpoint = make_endpoint(provider=Protocol.AZURE_OPENAI, base_url=upstream.url + "/openai/deployments",
                             api_key="azure-key-0123456789")

    events = run_chat(endpoint)

    assert text_of(events) == "Hello from the upstream."
    assert upstream.last.path == "/openai/deployments/test-model/chat/completions"
    assert upstream.last.headers["api-key"] == "azure-key-0123456789"


# --- the hooks --------------------------------------------------------------------------------------

class Signed(OpenAIChatAdapter):
    """Chat Completions with a signature of the exact bytes sent (as SigV4 signs a request)."""

    def sign(self, call: Call, content: bytes) -> dict[str, str]:
        return {"X-Signature": hashlib.sha256(call.credential.encode() + content).hexdigest()}


class LineFramed(OpenAIChatAdapter):
    """A protocol whose stream is read line by line instead of as SSE events."""

    def streamed(self, response: httpx.Response) -> bool:
        return response.status_code == 200

    async def frames(self, response: httpx.Response) -> AsyncGenerator[Any, None]:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                yield line[len("data: "):]

    def read_event(self, sse: Any, state: StreamState, call: Call) -> list[Event]:
        if sse == "[DONE]":
            state.done = True
            return []
        chunk = json.loads(sse)
        for choice in chunk.get("choices") or []:
            if choice.get("finish_reason"):
                state.finish = choice["finish_reason"]
        return [TextDelta(c["delta"]["content"]) for c in chunk.get("choices") or [] if c["delta"].get("content")]


def _run(adapter: OpenAIChatAdapter, call: Call) -> list[Event]:
    async def run() -> list[Event]:
        try:
            return [event async for event in adapter.run(call)]
        finally:
            await http.aclose()

    return asyncio.run(run())


def _call(url: str) -> Call:
    return Call(endpoint_name="Signed", model="m", url=url + "/chat/completions",
                headers={"Content-Type": "application/json"}, credential="secret-key",
                body={"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": True})


def test_a_signing_adapter_signs_the_exact_bytes_it_sends(upstream):
    events = _run(Signed(), _call(upstream.base_url))

    assert text_of(events) == "Hello from the upstream." and isinstance(final(events), Finish)
    assert upstream.last.headers["x-signature"] == hashlib.sha256(b"secret-key" + upstream.last.raw).hexdigest()


def test_an_adapter_with_its_own_framing_reads_its_stream_through_frames(upstream):
    upstream.reply(text="Framed another way.")

    events = _run(LineFramed(), _call(upstream.base_url))

    assert text_of(events) == "Framed another way." and final(events) == Finish("stop")


def test_the_credential_is_not_shown_when_a_call_is_printed():
    assert "secret-key" not in repr(_call("http://example.invalid"))
