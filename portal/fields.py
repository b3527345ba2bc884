"""Model fields shared by apps."""
from __future__ import annotations

from django.db import models

from portal import crypto


class EncryptedTextField(models.TextField):
    """Stores `fernet:<token>` in the database; Python code sees the plaintext.

    Plain `${ENV_VAR}` references and the literal `user_provided` are not secrets, but they are
    encrypted the same way: one storage format, no special cases when reading.
    """

    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return crypto.decrypt(value)

    def to_python(self, value):
        return value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return crypto.encrypt(value)
