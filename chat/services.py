"""The chat turn's public names, where they were before the turn and the answer got modules of
their own: `chat.turns` (the action, the plan, the turn), `chat.planning` (prepare_turn),
`chat.answer` (stream_turn, StopSignal, ProviderRequest) and `chat.finish` (Done). New code
imports from those; entry points usually need only `chat.run.start_turn`.
"""
from __future__ import annotations

from chat.answer import ProviderRequest, StopSignal, stream_turn
from chat.errors import Busy, ChatError, Forbidden, InvalidRequest, NoBalance, NotFound
from chat.finish import Done
from chat.planning import prepare_turn
from chat.turns import Operation, Turn, TurnAction, TurnPlan

__all__ = [
    "Busy", "ChatError", "Done", "Forbidden", "InvalidRequest", "NoBalance", "NotFound", "Operation",
    "ProviderRequest", "StopSignal", "Turn", "TurnAction", "TurnPlan", "prepare_turn", "stream_turn",
]
