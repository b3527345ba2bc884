"""A logging filter that blanks credentials, whatever logger they reach."""
from __future__ import annotations

import logging
import re

_PATTERNS = [
    # Authorization: Bearer xyz / x-api-key: xyz / api-key: xyz (headers dumped in messages)
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"(?i)((?:x-api-key|api-key|api_key|apikey|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}"),
    # well-known key shapes: sk-..., sk-ant-..., gsk_..., xai-..., pplx-..., sk-or-..., atr_...
    re.compile(r"\b(?:sk|gsk|xai|pplx|atr)[-_][A-Za-z0-9_-]{8,}"),
    # Google API keys (Gemini): AIza + 35 characters
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
]


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
        else:
            text = pattern.sub("[redacted]", text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # A traceback is formatted after the filters ran: format it here (the formatter reuses
        # exc_text) so a key inside an exception message is blanked too.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
