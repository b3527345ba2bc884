"""The end of an answer: what it received (`Received`), what it bills (`usage_to_bill`), and
`finish_turn`, which stores it and bills it through `chat.recovery.finish_answer` — the one
function both ends of an answer (the turn's own, and recovery's after a crash) go through.
"""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from billing.pricing import Rates
from billing.tokens import count_tokens, estimated_usage
from chat import configcache
from chat.claims import release_conversation
from chat.planning import rates_of
from chat.recovery import Bill, finish_answer
from chat.turns import Operation, Turn
from endpoints.adapters.types import Event, ReasoningDelta, StreamError, TextDelta, ToolCallDelta, Usage


@dataclass(frozen=True)
class Done:
    """The last event of a turn: what was stored."""

    message_id: uuid.UUID
    finish_reason: str
    unfinished: bool
    error: str
    usage: Usage
    estimated: bool
    text: str


class Received:
    """The answer as it grows: text, reasoning and tool calls (merged from indexed fragments)."""

    def __init__(self, prefix_text: str, prefix_parts: list[dict[str, Any]]):
        self.prefix_text = prefix_text
        self.text: list[str] = []
        self.reasoning: list[str] = [p.get("text", "") for p in prefix_parts if p.get("type") == "reasoning"]
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.other_parts = [p for p in prefix_parts if p.get("type") not in ("reasoning", "tool_call")]
        for position, part in enumerate(p for p in prefix_parts if p.get("type") == "tool_call"):
            self.tool_calls[position] = dict(part)
        self.changed = False

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self.tool_calls.setdefault(event.index, {"type": "tool_call", "id": "", "name": "", "arguments": ""})
            if event.id:
                call["id"] = event.id
            if event.name and not call["name"]:
                call["name"] = event.name
            call["arguments"] += event.arguments
        else:
            return
        self.changed = True

    @property
    def new_text(self) -> str:
        return "".join(self.text)

    @property
    def full_text(self) -> str:
        return self.prefix_text + self.new_text

    @property
    def has_output(self) -> bool:
        return bool(self.text or (self.reasoning and any(self.reasoning)) or self.tool_calls)

    def parts(self) -> list[dict[str, Any]]:
        parts = list(self.other_parts)
        reasoning = "".join(self.reasoning)
        if reasoning:
            parts.append({"type": "reasoning", "text": reasoning})
        parts.extend(self.tool_calls[i] for i in sorted(self.tool_calls))
        parts.append({"type": "text", "text": self.full_text})
        return parts

    def generated_for_estimate(self) -> str:
        calls = "".join(c.get("name", "") + c.get("arguments", "") for c in self.tool_calls.values())
        return self.new_text + "".join(self.reasoning) + calls


@dataclass(frozen=True)
class Outcome:
    """How the provider's stream ended, as the answer's stream saw it."""

    reported: Usage | None  # the provider's last usage report
    finish_reason: str  # the provider's ("" when it sent none)
    error: StreamError | None
    stopped: bool  # stopped by the user, or abandoned by whoever iterated the answer
    request_sent: bool


def usage_to_bill(
    turn: Turn, received: Received, outcome: Outcome, *, interrupted: bool
) -> tuple[Usage, bool | frozenset[str]]:
    """What to bill, and which of it is estimated (True: all; else the token types; SPEC §4): every
    count the provider reported, as reported; only what it did not report is estimated. An
    interrupted answer (cut, failed, stopped) bills at least the tokenizer's count of the text
    delivered: the provider's last report may predate most of it (Anthropic's message_start says
    output_tokens 1). A refused request (401, 404, 429, connection refused) with no output and no
    usage costs nothing."""
    reported = outcome.reported
    if reported is None:
        if received.has_output or (outcome.stopped and outcome.request_sent):
            estimate = estimated_usage(
                prompt_tokens=turn.prompt_tokens, received_text=received.generated_for_estimate(), model=turn.model
            )
            return estimate, True
        return Usage(), False
    if received.has_output and (interrupted or reported.output_tokens == 0):
        delivered = count_tokens(received.generated_for_estimate(), turn.model)
        if delivered > reported.output_tokens:
            return dataclasses.replace(reported, output_tokens=delivered), frozenset({"completion"})
    return reported, False


def _add(previous: int | None, new: int, op: Operation) -> int:
    """Token counts of a continued answer add up; a fresh answer starts from zero."""
    return (previous or 0) + new if op == Operation.CONTINUE else new


def _stored_fields(turn: Turn, received: Received, usage: Usage, finish_reason: str, error: str,
                   unfinished: bool) -> dict[str, Any]:
    message, op = turn.assistant_message, turn.op
    return dict(
        text=received.full_text,
        content=received.parts(),
        finish_reason=finish_reason[:40],
        error=error,
        unfinished=unfinished,
        prompt_tokens=_add(message.prompt_tokens, usage.prompt_total, op),
        completion_tokens=_add(message.completion_tokens, usage.output_tokens, op),
        cache_read_tokens=_add(message.cache_read_tokens, usage.cache_read_tokens, op),
        cache_write_tokens=_add(message.cache_write_tokens, usage.cache_write_tokens, op),
        reasoning_tokens=_add(message.reasoning_tokens, usage.reasoning_tokens, op),
        updated_at=timezone.now(),
    )


def _rates_or_none(turn: Turn, snap: configcache.Snapshot | None) -> Rates | None:
    try:
        return rates_of(turn.endpoint, turn.model, snap or configcache.snapshot())
    except Exception:  # the configuration store is away: billing looks the rates up itself
        return None


def finish_turn(turn: Turn, received: Received, outcome: Outcome, *, saved: bool = True,
                snap: configcache.Snapshot | None = None) -> Done:
    """Store the final answer and bill it (chat.recovery.finish_answer, as recovery does), then
    release the conversation's claim. `saved`: whether the turn's rows were saved (if not, only the
    bill is posted). `snap`: the configuration as the event loop sees it now (there its version
    costs no round trip; see chat.configcache)."""
    error = outcome.error
    clean = not outcome.stopped and error is None and outcome.finish_reason not in ("", "length")
    interrupted = outcome.stopped or error is not None or outcome.finish_reason == ""
    finish_reason = "stopped" if outcome.stopped else "error" if error is not None else outcome.finish_reason
    error_text = error.message if error is not None else ""
    usage, estimated = usage_to_bill(turn, received, outcome, interrupted=interrupted)
    done = Done(
        message_id=turn.assistant_message_id,
        finish_reason=finish_reason,
        unfinished=not clean,
        error=error_text,
        usage=usage,
        estimated=bool(estimated),
        text=received.full_text,
    )
    if turn.stateless:  # the gateway: no conversation, the bill alone (context `gateway`)
        bill = Bill(user=turn.user, endpoint=turn.endpoint, model=turn.model, usage=usage, context="gateway",
                    estimated=estimated, hold=turn.hold, rates=_rates_or_none(turn, snap))
        finish_answer(message_id=None, conversation_id=None, fields={"updated_at": timezone.now()}, bill=bill,
                      record=None)
        return done
    message = turn.assistant_message
    fields = _stored_fields(turn, received, usage, finish_reason, error_text, unfinished=not clean)
    try:
        bill = Bill(
            user=turn.user, endpoint=turn.endpoint, model=turn.model, usage=usage,
            context="message" if clean or finish_reason == "length" else "abort",
            estimated=estimated, hold=turn.hold, rates=_rates_or_none(turn, snap),
        )
        finish_answer(
            message_id=message.pk if saved else None,
            conversation_id=turn.conversation_id,
            fields=fields,
            bill=bill,
            record=message.in_flight,
        )
    finally:
        release_conversation(turn.conversation_id, turn.generation_id, turn.user.pk)
    return done
