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
        return True
