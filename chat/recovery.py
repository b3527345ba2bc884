"""Answers whose process died mid-stream: found and finished by a Celery beat job.

While an answer is written, its process keeps the conversation's claim alive (`lock:<id>` in the
chat store, chat/store.py; refreshed every LOCK_REFRESH_SECONDS, expiring LOCK_TTL after the last
refresh) and flushes the text to the database at most every second. The assistant message carries an
`in_flight` record from the moment the turn's rows are saved (`chat.turns.save_turn`) until the
turn ends, however it ends (`chat.finish.finish_turn` clears it). A process that dies (killed,
out of memory, host lost) never clears it: without this module the answer would stay unfinished
and unbilled, and the balance hold taken by the balance check would linger until it expires.

`recover_interrupted_answers` (run by Celery beat every CHAT_RECOVERY_CHECK_SECONDS, see
chat.tasks) finishes every message that is

* still in flight,
* not written for CHAT_RECOVERY_GRACE_SECONDS (a live stream writes at least every few seconds
  while text arrives), and
* in a conversation nobody holds a claim on (a live process refreshes it; a provider that thinks in
  silence for minutes leaves the text unchanged, but not the claim),

by keeping the text written so far, marking it `interrupted` with an error the user reads, storing
and billing an estimate (the turn's prompt tokens counted when it was prepared, and the tokenizer's
count of what this turn wrote: for a continued answer only the text after what it already had) as
an `abort` transaction marked estimated, and releasing the turn's balance hold (by its call id,
kept in the record).

An answer whose turn ended but whose bill failed (the ledger raised) is found the same way: the
turn stored it with its in-flight record kept and the bill it could not post in the record
(`bill`), which recovery posts as it was, not an estimate.

Both ends of an answer — the turn's own and recovery's — go through `finish_answer`: one database
transaction that stores the answer, clears the in-flight record by a conditional update and posts
the bill. Concurrent or repeated runs therefore finish and bill a message once; a run that fails
(Redis or database away) changes nothing and the next one tries again.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import services as billing
from billing.models import Context
from billing.tokens import estimated_usage
from chat.models import Conversation, Message
from endpoints.adapters.types import Usage

if TYPE_CHECKING:
    from accounts.models import User
    from billing.pricing import Rates
    from endpoints.models import Endpoint

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
INTERRUPTED_ERROR = "The server restarted while this answer was being written; what was written is kept."


def in_flight_record(
    *, prompt_tokens: int, hold: uuid.UUID | None, prefix_text: str, prefix_parts: list[dict[str, Any]]
) -> dict[str, Any]:
    """What a turn stores on its answer while it is written: the prompt tokens it was admitted with,
    when it started, and how much of the answer was there before (a continued answer), per kind
    (text, reasoning, tool calls), in characters."""
    return {
        "prompt_tokens": prompt_tokens,
        "hold": str(hold) if hold is not None else None,
        "started_at": timezone.now().isoformat(),
        "prefix": {
            "text": len(prefix_text),
            "reasoning": len(_reasoning(prefix_parts)),
            "tool_calls": len(_tool_calls(prefix_parts)),
        },
    }


def _reasoning(parts: list[dict[str, Any]]) -> str:
    return "".join(p.get("text") or "" for p in parts if p.get("type") == "reasoning")


def _tool_calls(parts: list[dict[str, Any]]) -> str:
    return "".join((p.get("name") or "") + (p.get("arguments") or "") for p in parts if p.get("type") == "tool_call")


@dataclass(frozen=True)
class Bill:
    """What an ended answer is billed: the usage, how it was obtained, and the hold it settles."""

    user: User
    endpoint: Endpoint | None
    model: str
    usage: Usage
    context: str
    estimated: bool | frozenset[str]  # True: all counts; else the token types estimated
    hold: uuid.UUID | None
    rates: Rates | None = None

    def record(self) -> dict[str, Any]:
        """The bill as the in-flight record keeps it when it could not be posted."""
        estimated = self.estimated if isinstance(self.estimated, bool) else sorted(self.estimated)
        return {"usage": dataclasses.asdict(self.usage), "context": self.context, "estimated": estimated}


def finish_answer(
    *,
    message_id: uuid.UUID | None,
    conversation_id: uuid.UUID | None,
    fields: dict[str, Any],
    bill: Bill,
    record: dict[str, Any] | None,
    only_in_flight: bool = False,
) -> bool:
    """Store an ended answer (`fields`, its in-flight record cleared) and post its bill, in one
    database transaction. `message_id` None: the answer's rows were never saved (the bill is posted
    alone). `only_in_flight`: finish it only if it is still in flight (recovery; False when not).

    When posting the bill raises, the answer is stored all the same but keeps its in-flight
    record, with the bill in it: recovery posts it later (the turn's claim is gone by then); only
    a log line remains of the failure. Returns whether the bill was posted."""
    message = None
    if message_id is not None and conversation_id is not None:
        message = Message(pk=message_id, conversation_id=conversation_id)
    try:
        with transaction.atomic():
            if message_id is not None:
                rows = Message.objects.filter(pk=message_id)
                if only_in_flight:
                    rows = rows.filter(in_flight__isnull=False)
                if not rows.update(**fields, in_flight=None):
                    if only_in_flight:
                        return False
                    message = None  # deleted meanwhile (its conversation was): billed all the same
                if not only_in_flight and conversation_id is not None:  # the turn's end: the conversation moved on
                    Conversation.objects.filter(pk=conversation_id).update(updated_at=fields["updated_at"])
            billing.record_usage(
                user=bill.user,
                endpoint=bill.endpoint,
                model=bill.model,
                usage=bill.usage,
                context=bill.context,
                message=message,
                estimated=bill.estimated,
                rates=bill.rates,
                release=bill.hold,
                now=fields.get("updated_at"),
            )
        return True
    except Exception:
        log.exception(
            "billing answer %s (%s) failed; the answer is stored and recovery bills it", message_id, bill.usage
        )
        if message_id is not None:
            kept = {**(record or {}), "bill": bill.record()}
            Message.objects.filter(pk=message_id).update(**fields, in_flight=kept)
        return False


def written_by_turn(message: Message, record: dict[str, Any]) -> str:
    """What the interrupted turn generated, as saved: its text, reasoning and tool calls without
    what a continued answer already had (the same parts the live turn estimates from)."""
    prefix = record.get("prefix") or {}
    parts = message.content if isinstance(message.content, list) else []
    parts = [p for p in parts if isinstance(p, dict)]
    return (
        message.text[int(prefix.get("text") or 0):]
        + _reasoning(parts)[int(prefix.get("reasoning") or 0):]
        + _tool_calls(parts)[int(prefix.get("tool_calls") or 0):]
    )


def recover_interrupted_answers(
    *, now: dt.datetime | None = None, grace: int | None = None, batch: int = 200
) -> int:
    """Finish every answer whose process died (see module doc). Returns how many were finished.

    `now` and `grace` (seconds, default CHAT_RECOVERY_GRACE_SECONDS) let tests and operators
    control time."""
    now = now or timezone.now()
    grace = settings.CHAT_RECOVERY_GRACE_SECONDS if grace is None else grace
    cutoff = now - dt.timedelta(seconds=grace)
    stale = Message.objects.filter(in_flight__isnull=False, updated_at__lt=cutoff).order_by("updated_at", "pk")
    recovered = 0
    after: tuple[dt.datetime, uuid.UUID] | None = None
    while True:
        page = stale
        if after is not None:  # keyset: rows left in flight (claimed, failed) are passed, not re-read
            page = page.filter(updated_at__gte=after[0]).exclude(updated_at=after[0], pk__lte=after[1])
        rows = list(page.values_list("pk", "updated_at")[:batch])
        for pk, _ in rows:
            try:
                recovered += _recover(pk, cutoff=cutoff, now=now)
            except Exception:
                log.exception("recovering interrupted answer %s failed; the next run tries again", pk)
        if len(rows) < batch:
            return recovered
        after = (rows[-1][1], rows[-1][0])


def _bill_of(message: Message, record: dict[str, Any]) -> Bill:
    """The bill of an answer found in flight: the one its turn could not post, else an estimate."""
    hold = record.get("hold")
    kept = record.get("bill")
    if isinstance(kept, dict):
        usage = Usage(**{k: int(v) for k, v in (kept.get("usage") or {}).items() if k in Usage.__dataclass_fields__})
        context, estimated = str(kept.get("context") or Context.ABORT), kept.get("estimated")
        estimated = frozenset(estimated) if isinstance(estimated, list) else bool(estimated)
    else:
        usage = estimated_usage(
            prompt_tokens=int(record.get("prompt_tokens") or 0),
            received_text=written_by_turn(message, record),
            model=message.model,
        )
        context, estimated = Context.ABORT, True
    return Bill(
        user=message.user, endpoint=message.endpoint, model=message.model, usage=usage, context=context,
        estimated=estimated, hold=uuid.UUID(hold) if hold else None,
    )


def _recover(pk: uuid.UUID, *, cutoff: dt.datetime, now: dt.datetime) -> bool:
    """Finish one answer if it is still in flight, stale and unclaimed; False when it is not."""
    from chat.claims import current_generation

    with transaction.atomic():
        # Locked: a concurrent run waits here, then finds it finished (skip_locked: passes it by).
        message = (
            Message.objects.select_for_update(skip_locked=True)
            .filter(pk=pk, in_flight__isnull=False, updated_at__lt=cutoff)
            .first()
        )
        if message is None:
            return False
        if current_generation(message.conversation_id) is not None:
            return False  # an answer is being written in this conversation right now: not ours to end
        record = message.in_flight if isinstance(message.in_flight, dict) else {}
        bill = _bill_of(message, record)
        usage = bill.usage
        ended = "bill" in record  # the turn ended and stored the answer; only its bill is missing
        fields = {"updated_at": now} if ended else dict(
            unfinished=True,
            finish_reason=INTERRUPTED,
            error=INTERRUPTED_ERROR,
            # a continued answer's counts add up, as in chat.finish.finish_turn
            prompt_tokens=(message.prompt_tokens or 0) + usage.prompt_total,
            completion_tokens=(message.completion_tokens or 0) + usage.output_tokens,
            cache_read_tokens=message.cache_read_tokens or 0,
            cache_write_tokens=message.cache_write_tokens or 0,
            reasoning_tokens=message.reasoning_tokens or 0,
            updated_at=now,
        )
        if not finish_answer(
            message_id=message.pk, conversation_id=message.conversation_id, fields=fields, bill=bill,
            record=record, only_in_flight=True,
        ):
            return False
    log.info(
        "finished interrupted answer %s of conversation %s: %s prompt + %s output tokens billed (estimated)",
        pk, message.conversation_id, usage.prompt_total, usage.output_tokens,
    )
    return True
