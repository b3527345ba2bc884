"""bench/floor.py, the bare streaming proxy `bench/ttft.py --floor` compares Atrium with: it must
stream a real answer through the production adapter path, or the floor it measures means nothing."""
from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from endpoints.adapters.types import Usage

# The floor uses no database, but channels' websocket consumer closes stale connections of the
# shared database thread on disconnect (channels.db.aclose_old_connections).
pytestmark = pytest.mark.django_db(transaction=True)


async def _frames(communicator: WebsocketCommunicator) -> list[dict]:
    frames = []
    while not frames or frames[-1]["type"] not in ("done", "error"):
        frames.append(json.loads(await communicator.receive_from(timeout=10)))
    return frames


async def test_the_floor_proxy_streams_the_upstream_answer_as_delta_frames(upstream, monkeypatch):
    from bench.floor import application

    monkeypatch.setenv("FLOOR_UPSTREAM_URL", upstream.url + "/v1/chat/completions")
    text = "one two three four five six seven eight"
    upstream.reply(text=text, usage=Usage(input_tokens=3, output_tokens=8))
    communicator = WebsocketCommunicator(application, "/ws/chat/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data=json.dumps({"type": "send", "text": "Say it", "model": "bench-model"}))
    frames = await _frames(communicator)
    await communicator.disconnect()

    deltas = [frame for frame in frames if frame["type"] == "delta"]
    assert frames[-1] == {"type": "done"}
    assert "".join(frame["text"] for frame in deltas) == text
    assert deltas[0]["text"] == "one "  # the first token alone, the rest merged
    assert 1 < len(deltas) < len(text.split())
    sent = upstream.last
    assert sent.json["model"] == "bench-model" and sent.json["stream"] is True
    assert sent.json["messages"] == [{"role": "user", "content": "Say it"}]


async def test_without_an_upstream_the_floor_proxy_says_so(monkeypatch):
    from bench.floor import application

    monkeypatch.delenv("FLOOR_UPSTREAM_URL", raising=False)
    communicator = WebsocketCommunicator(application, "/ws/chat/")
    await communicator.connect()
    await communicator.send_to(text_data=json.dumps({"type": "send", "text": "Hi", "model": "m"}))
    assert await _frames(communicator) == [{"type": "error", "message": "FLOOR_UPSTREAM_URL is not set"}]
    await communicator.disconnect()
