"""Answers whose process died mid-stream: found and finished by a Celery beat job.

While an answer is written, its process keeps the conversation's claim alive (`lock:<id>` in the
chat store, chat/store.py; refreshed every LOCK_REFRESH_SECONDS, expiring LOCK_TTL after the last
refresh) and flushes the text to the database at most every second. The assistant message carries an
`in_flight` record from the moment the turn's rows are saved (`chat.services.save_turn`) until the
turn ends, however it ends (`chat.services._finish_turn` clears it). A process that dies (killed,
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
an `abort` transaction marked estimated, and releasing the turn's balance hold.

Each message is finished in one database transaction: its row locked, the in-flight record cleared
by a conditional update, the ledger rows written. Concurrent or repeated runs therefore finish and
bill a message once; a run that fails (Redis or database away) changes nothing and the next one
tries again.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing import services as billing
from billing.models import Balance, Context
from billing.tokens import estimated_usage
from chat.models import Message

if TYPE_CHECKING:
    from chat.services import Turn

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
INTERRUPTED_ERROR = "The server restarted while this answer was being written; what was written is kept."


def in_flight_record(turn: "Turn") -> dict[str, Any]:
    """What a turn stores on its answer while it is written: the prompt tokens it was admitted with,
    when it started, and how much of the answer was there before (a continued answer), per kind
    (text, reasoning, tool calls), in characters."""
    return {
        "prompt_tokens": turn.prompt_tokens,
        "started_at": timezone.now().isoformat(),
        "prefix": {
            "text": len(turn.prefix_text),
            "reasoning": len(_reasoning(turn.prefix_parts)),
            "tool_calls": len(_tool_calls(turn.prefix_parts)),
        },
    }


def _reasoning(parts: list[dict[str, Any]]) -> str:
    return "".join(p.get("text") or "" for p in parts if p.get("type") == "reasoning")


def _tool_calls(parts: list[dict[str, Any]]) -> str:
    return "".join((p.get("name") or "") + (p.get("arguments") or "") for p in parts if p.get("type") == "tool_call")


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
        usage = estimated_usage(
            prompt_tokens=int(record.get("prompt_tokens") or 0),
            received_text=written_by_turn(message, record),
            model=message.model,
        )
        finished = Message.objects.filter(pk=pk, in_flight__isnull=False).update(
            in_flight=None,
            unfinished=True,
            finish_reason=INTERRUPTED,
            error=INTERRUPTED_ERROR,
            # a continued answer's counts add up, as in chat.services._finish_turn
            prompt_tokens=(message.prompt_tokens or 0) + usage.prompt_total,
            completion_tokens=(message.completion_tokens or 0) + usage.output_tokens,
            cache_read_tokens=message.cache_read_tokens or 0,
            cache_write_tokens=message.cache_write_tokens or 0,
            reasoning_tokens=message.reasoning_tokens or 0,
            updated_at=now,
        )
        if not finished:
            return False
        # The turn's hold: released by recording its usage, unless it has expired already (then a
        # release would free the hold of another request of the user that is still running).
        started_at = parse_datetime(str(record.get("started_at") or "")) or message.created_at
        hold_alive = started_at + dt.timedelta(seconds=settings.BILLING_HOLD_SECONDS) > now
        billing.record_usage(
            user=message.user,
            endpoint=message.endpoint,
            model=message.model,
            usage=usage,
            context=Context.ABORT,
            message=message,
            estimated=True,
            now=now,
            release_hold=hold_alive,
        )
        # Apply the release now rather than at the user's next balance check (which may never come):
        # the hold row goes, with any expired ones.
        balance = Balance.objects.select_for_update().filter(user_id=message.user_id).first()
        if balance is not None:
            billing.release_holds(balance=balance, now=now)
    log.info(
        "finished interrupted answer %s of conversation %s: %s prompt + %s output tokens billed (estimated)",
        pk, message.conversation_id, usage.prompt_total, usage.output_tokens,
    )
    return True
