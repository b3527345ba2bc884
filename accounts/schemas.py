"""Request/response schemas of the accounts API."""
from __future__ import annotations

from datetime import datetime

from ninja import Schema
from pydantic import Field


class RoleOut(Schema):
    name: str
    label: str
    can_use_api: bool


class MeOut(Schema):
    id: int
    username: str
    email: str
    name: str
    auth_provider: str
    role: RoleOut | None
    via_api_key: bool


class ApiKeyIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    expires_at: datetime | None = None


class ApiKeyOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The full key. Shown only in this response: store it now.")
