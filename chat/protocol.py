"""The frames a client may send over the chat websocket (README, "Chat and streaming"), validated.

`parse_frame` turns raw text into one of the frame models or raises `FrameError` with a message
that says what is wrong, so a bad frame gets an error frame back and never a traceback.
"""
from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from chat.policy import MAX_TEXT_CHARS
from chat.turns import Operation, TurnAction

MAX_FRAME_BYTES = 1_000_000


class FrameError(Exception):
    def __init__(self, message: str, *, request_id: str | None = None):
        super().__init__(message)
        self.request_id = request_id


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str | None = Field(default=None, max_length=100, description="Echoed in replies.")


class _Switch(_Frame):
    """Any operation may switch the conversation to another endpoint/model or model spec."""

    endpoint: str | int | None = Field(default=None, description="Endpoint name (or id).")
    model: str | None = Field(default=None, max_length=200)
    spec: str | None = Field(default=None, max_length=100, description="Model spec name.")
    params: dict[str, Any] | None = None
    system_prompt: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class Join(_Frame):
    type: Literal["join"]
    conversation_id: uuid.UUID


class Leave(_Frame):
    type: Literal["leave"]
    conversation_id: uuid.UUID


class Send(_Switch):
    type: Literal["send"]
    text: str = Field(max_length=MAX_TEXT_CHARS)
    conversation_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    temporary: bool = Field(default=False, description="A new conversation only: a temporary chat.")


class Edit(_Switch):
    type: Literal["edit"]
    message_id: uuid.UUID
    text: str = Field(max_length=MAX_TEXT_CHARS)


class Regenerate(_Switch):
    type: Literal["regenerate"]
    message_id: uuid.UUID


class Continue(_Switch):
    type: Literal["continue"]
    message_id: uuid.UUID


class Stop(_Frame):
    type: Literal["stop"]
    conversation_id: uuid.UUID


class Ping(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[
    Join | Leave | Send | Edit | Regenerate | Continue | Stop | Ping, Field(discriminator="type")
]
_adapter: TypeAdapter[Join | Leave | Send | Edit | Regenerate | Continue | Stop | Ping] = TypeAdapter(ClientFrame)
FRAME_TYPES = ("join", "leave", "send", "edit", "regenerate", "continue", "stop", "ping")


def parse_frame(text: str | None) -> Join | Leave | Send | Edit | Regenerate | Continue | Stop | Ping:
    if text is None:
        raise FrameError("Frames must be JSON text, not binary.")
    if len(text) > MAX_FRAME_BYTES:
        raise FrameError(f"The frame is too large (at most {MAX_FRAME_BYTES:,} characters).")
    try:
        data = json.loads(text)
    except ValueError:
        raise FrameError("The frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise FrameError("A frame must be a JSON object with a 'type'.")
    request_id = data.get("request_id") if isinstance(data.get("request_id"), str) else None
    if data.get("type") not in FRAME_TYPES:
        raise FrameError(
            f"Unknown frame type {data.get('type')!r}; expected one of: {', '.join(FRAME_TYPES)}.",
            request_id=request_id,
        )
    try:
        return _adapter.validate_python(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"][1:]) or "frame"
            problems.append(f"{where}: {err['msg']}")
        raise FrameError("Invalid frame — " + "; ".join(problems), request_id=request_id) from None


def to_action(frame: Send | Edit | Regenerate | Continue) -> TurnAction:
    return TurnAction.asked(Operation(frame.type), frame)
