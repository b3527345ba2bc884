"""Helpers for tests that chat over the websocket: through channels' WebsocketCommunicator on the
real ASGI application, or over a real socket against daphne (the `websockets` client)."""
from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from channels.testing import WebsocketCommunicator
from django.test import Client

ORIGIN = "http://127.0.0.1"
TIMEOUT = 10.0


def session_cookie(user: Any) -> str:
    """A real login session for `user` (sync: call from a fixture or a sync test)."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


@dataclass
class Answer:
    """The frames of one answer, from `created` to `done`, and what they add up to."""

    frames: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    @property
    def created(self) -> dict[str, Any]:
        return self.of_type("created")[0]

    @property
    def done(self) -> dict[str, Any]:
        return self.of_type("done")[-1]

    @property
    def text(self) -> str:
        created = self.of_type("created")
        start = created[0].get("text", "") if created else ""
        return start + "".join(f.get("text", "") for f in self.of_type("delta"))

    @property
    def reasoning(self) -> str:
        return "".join(f.get("reasoning", "") for f in self.of_type("delta"))

    @property
    def tool_calls(self) -> dict[int, dict[str, str]]:
        calls: dict[int, dict[str, str]] = {}
        for frame in self.of_type("delta"):
            for fragment in frame.get("tool_calls", []):
                call = calls.setdefault(fragment["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = call["id"] or fragment.get("id") or ""
                call["name"] = call["name"] or fragment.get("name") or ""
                call["arguments"] += fragment.get("arguments") or ""
        return calls

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.of_type("error")

    @property
    def usage(self) -> dict[str, Any]:
        return self.of_type("usage")[-1]

    @property
    def conversation_id(self) -> str:
        return self.created["conversation_id"]

    @property
    def message_id(self) -> str:
        return self.created["assistant_message_id"]


class Socket(ABC):
    """A chat socket with a frame-level API, over either transport."""

    @abstractmethod
    async def send_text(self, text: str) -> None: ...

    @abstractmethod
    async def receive_text(self, timeout: float) -> str: ...

    async def send(self, **frame: Any) -> None:
        await self.send_text(json.dumps(frame, default=str))

    async def receive(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return json.loads(await self.receive_text(timeout))

    async def until(self, kind: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Frames up to and including the first of type `kind`."""
        frames = []
        while True:
            frame = await self.receive(timeout)
            frames.append(frame)
            if frame["type"] == kind:
                return frames

    async def answer(self, timeout: float = TIMEOUT) -> Answer:
        """Frames until `done` (or a refusal: an error frame before anything was created)."""
        answer = Answer()
        while True:
            frame = await self.receive(timeout)
            answer.frames.append(frame)
            if frame["type"] == "done":
                return answer
            if frame["type"] == "error" and not answer.of_type("created"):
                return answer

    async def ask(self, text: str = "Hello?", **fields: Any) -> Answer:
        await self.send(type="send", text=text, **fields)
        return await self.answer()

    async def nothing_within(self, seconds: float = 0.3) -> bool:
        try:
            frame = await self.receive(seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected frame {frame}")


class CommunicatorSocket(Socket):
    def __init__(self, communicator: WebsocketCommunicator):
        self.communicator = communicator

    async def send_text(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def send_bytes(self, data: bytes) -> None:
        await self.communicator.send_to(bytes_data=data)

    async def receive_text(self, timeout: float) -> str:
        message = await self.communicator.receive_output(timeout)
        if message["type"] == "websocket.close":
            raise ConnectionError(f"socket closed with code {message.get('code')}")
        return message["text"]

    async def nothing_within(self, seconds: float = 0.3) -> bool:
        # receive_nothing, not a timed-out receive: that would cancel the application
        return await self.communicator.receive_nothing(seconds)

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_socket(cookie: str | None, *, origin: str | None = ORIGIN) -> tuple[bool, Any, CommunicatorSocket]:
    """A websocket to the real ASGI application (origin check and session auth included)."""
    from portal.asgi import application

    headers = []
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if origin:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, code = await communicator.connect(timeout=TIMEOUT)
    return connected, code, CommunicatorSocket(communicator)


class RealSocket(Socket):
    """A websocket over TCP to a running daphne."""

    def __init__(self, connection: Any):
        self.connection = connection

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def receive_text(self, timeout: float) -> str:
        return await asyncio.wait_for(self.connection.recv(), timeout)

    async def close(self) -> None:
        await self.connection.close()


async def open_real_socket(url: str, cookie: str, *, origin: str = ORIGIN) -> RealSocket:
    import websockets

    connection = await websockets.connect(
        url, origin=origin, additional_headers={"Cookie": cookie}, open_timeout=TIMEOUT, max_size=None
    )
    return RealSocket(connection)
