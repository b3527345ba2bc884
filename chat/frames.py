"""The server → client frames of an answer (README, "The websocket"): builders, the one function
that merges delta frames, and `SoFar`, an answer's frames folded into what a joining socket is
sent first. Plain dicts and nothing else: no socket, channel layer or store here."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from endpoints.adapters.types import ReasoningDelta, StreamError, TextDelta, ToolCallDelta

if TYPE_CHECKING:
    from chat.finish import Done
    from chat.turns import Turn

Frame = dict[str, Any]
DELTA_KEYS = ("text", "reasoning", "tool_calls")


def created_frame(turn: Turn, *, request_id: str | None) -> Frame:
    shown = turn.shown
    user_message = shown["user_message"]
    return {
        "type": "created",
        "conversation_id": str(turn.conversation_id),
        "generation_id": turn.generation_id,
        "request_id": request_id,
        "operation": str(turn.op),
        "new_conversation": turn.new_conversation,
        "title": shown["title"],
        "user_message_id": user_message["id"] if user_message is not None else None,
        "user_message": dict(user_message) if user_message is not None else None,
        "assistant_message_id": str(turn.assistant_message_id),
        "parent_id": shown["parent_id"],
        "text": turn.prefix_text,  # a continued answer starts with what it already had
        "endpoint": turn.endpoint.name,
        "endpoint_id": turn.endpoint.pk,
        "model": turn.model,
        "spec": turn.target.spec.name if turn.target.spec is not None else None,
        "sender": shown["sender"],
        "temporary": shown["temporary"],
    }


def delta_frame(message_id: str, event: TextDelta | ReasoningDelta | ToolCallDelta) -> Frame:
    frame: Frame = {"type": "delta", "message_id": message_id}
    if isinstance(event, TextDelta):
        frame["text"] = event.text
    elif isinstance(event, ReasoningDelta):
        frame["reasoning"] = event.text
    else:
        frame["tool_calls"] = [{"index": event.index, "id": event.id, "name": event.name, "arguments": event.arguments}]
    return frame


def error_frame(message_id: str, error: StreamError) -> Frame:
    return {
        "type": "error", "message_id": message_id, "code": error.kind, "message": error.message,
        "status": error.status, "retry_after": error.retry_after,
    }


def end_frames(done: Done) -> list[Frame]:
    """`usage` then `done`: what was stored and billed."""
    usage = done.usage
    message_id = str(done.message_id)
    return [
        {
            "type": "usage",
            "message_id": message_id,
            "usage": {
                "prompt_tokens": usage.prompt_total,
                "completion_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
            },
            "estimated": done.estimated,
        },
        {
            "type": "done", "message_id": message_id, "finish_reason": done.finish_reason,
            "unfinished": done.unfinished, "error": done.error,
        },
    ]


def server_failure_frames(message_id: str) -> list[Frame]:
    """What sockets see when the answer's task itself failed (a bug; logged where it happened)."""
    return [
        {
            "type": "error", "message_id": message_id, "code": "server",
            "message": "The answer could not be completed because of a server error; what was written is kept.",
        },
        {
            "type": "done", "message_id": message_id, "finish_reason": "error", "unfinished": True,
            "error": "server error",
        },
    ]


def merge_delta(into: Frame, frame: Frame) -> None:
    """Append delta frame `frame` to delta frame `into`, which then carries `frame`'s number: text
    and reasoning concatenated, a tool-call fragment joined to the previous one of the same index
    unless it starts a new call (it has an id). The only place deltas are merged."""
    for key in ("text", "reasoning"):
        if key in frame:
            into[key] = into.get(key, "") + frame[key]
    for fragment in frame.get("tool_calls", ()):
        calls = into.setdefault("tool_calls", [])
        if calls and calls[-1]["index"] == fragment["index"] and not fragment.get("id"):
            calls[-1]["arguments"] = (calls[-1].get("arguments") or "") + (fragment.get("arguments") or "")
            calls[-1]["name"] = calls[-1].get("name") or fragment.get("name")
        else:
            calls.append(dict(fragment))
    if "seq" in frame:
        into["seq"] = frame["seq"]


def copy_frame(frame: Frame) -> Frame:
    copy = dict(frame)
    if "tool_calls" in copy:
        copy["tool_calls"] = [dict(call) for call in copy["tool_calls"]]
    return copy


def append_frame(frames: list[Frame], frame: Frame) -> None:
    """Add `frame` to a batch: consecutive deltas become one frame numbered like the last."""
    last = frames[-1] if frames else None
    if frame["type"] == "delta" and last is not None and last["type"] == "delta":
        merge_delta(last, frame)
    else:
        frames.append(copy_frame(frame))


class SoFar:
    """An answer's frames up to number `seq`, folded: `created`, one delta holding everything
    written, then the frames after the deltas (error, usage, done). Stored as JSON in the chat
    store for sockets of other processes (`as_json` / `from_json`)."""

    def __init__(self, generation_id: str, conversation_id: str) -> None:
        self.generation_id = generation_id
        self.conversation_id = conversation_id
        self.seq = 0
        self.created: Frame | None = None
        self.written: Frame | None = None  # the deltas, merged
        self.tail: list[Frame] = []

    def apply(self, frame: Frame) -> None:
        if frame["type"] == "created":
            self.created = frame
        elif frame["type"] == "delta":
            if self.written is None:
                self.written = {k: v for k, v in copy_frame(frame).items() if k != "snapshot"}
            else:
                merge_delta(self.written, frame)
        else:
            self.tail.append(frame)
        self.seq = max(self.seq, frame.get("seq", 0))

    @property
    def done(self) -> bool:
        return any(frame["type"] == "done" for frame in self.tail)

    def frames(self, *, created: Frame | None = None) -> list[Frame]:
        """What a joining socket is sent first (nothing before `created`, unless given)."""
        created = created or self.created
        if created is None:
            return []
        frames = [dict(created)]
        if self.written is not None and any(key in self.written for key in DELTA_KEYS):
            frames.append({**copy_frame(self.written), "seq": self.seq, "snapshot": True})
        frames.extend(self.tail)
        return frames

    def as_json(self) -> dict[str, Any]:
        return {
            "generation_id": self.generation_id, "conversation_id": self.conversation_id, "seq": self.seq,
            "created": self.created, "tail": list(self.tail),
            "written": copy_frame(self.written) if self.written is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SoFar:
        so_far = cls(data["generation_id"], data["conversation_id"])
        so_far.seq, so_far.created, so_far.written = data["seq"], data["created"], data["written"]
        so_far.tail = list(data["tail"])
        return so_far
