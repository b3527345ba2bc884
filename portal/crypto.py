"""Secrets at rest: Fernet (AES-128-CBC + HMAC) with key rotation, and masking for display."""
from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "ATRIUM_ENCRYPTION_KEYS must be comma-separated Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return PREFIX + fernet().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        raise ValueError("value is not an Atrium-encrypted secret")
    try:
        return fernet().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with ATRIUM_ENCRYPTION_KEYS (key changed?)"
        ) from exc


def rotate(stored: str) -> str:
    """Re-encrypt with the first (newest) key."""
    return PREFIX + fernet().rotate(stored[len(PREFIX):].encode()).decode()


def mask(secret: str, visible: int = 4) -> str:
    """`sk-…abcd`: enough to recognise a key, never enough to use it."""
    if not secret:
        return ""
    if len(secret) <= visible * 3:
        return "•" * 8
    return f"{'•' * 8}{secret[-visible:]}"
