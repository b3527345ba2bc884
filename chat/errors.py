"""Refusals and bad requests of a chat turn, worded for the user; `code` tells clients the kind
(the websocket's `error` frame carries it)."""
from __future__ import annotations

BUSY_MESSAGE = "An answer is still being written in this conversation. Stop it or wait for it to finish."


class ChatError(Exception):
    """A refusal or bad request, worded for the user. `code` lets clients react to the kind."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class Forbidden(ChatError):
    code = "forbidden"


class NotFound(ChatError):
    code = "not_found"


class InvalidRequest(ChatError):
    code = "invalid"


class NoBalance(ChatError):
    code = "balance"


class Busy(ChatError):
    code = "busy"
