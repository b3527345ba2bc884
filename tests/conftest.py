"""Shared fixtures: factories for users, roles and endpoints."""
from __future__ import annotations

import itertools

import pytest

_seq = itertools.count(1)


@pytest.fixture
def make_user(db):
    from accounts.models import User

    def make(username: str | None = None, *, role=None, password: str = "pw-For-tests-1", **extra):
        username = username or f"user{next(_seq)}"
        extra.setdefault("email", f"{username}@example.com")
        user = User(username=username, role=role, **extra)
        user.set_password(password)
        user.save()
        return user

    return make


@pytest.fixture
def admin_user(db):
    from accounts.models import User

    return User.objects.create_superuser("root", "root@example.com", "pw-For-tests-1")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def make_endpoint(db):
    from endpoints.models import Endpoint, EndpointModel

    def make(name: str | None = None, *, models=("test-model",), rates=None, **fields):
        fields.setdefault("base_url", "http://127.0.0.1:9/v1")
        fields.setdefault("api_key", "sk-test-secret-value-1234")
        endpoint = Endpoint.objects.create(name=name or f"endpoint{next(_seq)}", **fields)
        for position, model in enumerate(models):
            EndpointModel.objects.create(endpoint=endpoint, name=model, ordering=position, **(rates or {}))
        return endpoint

    return make


@pytest.fixture
def upstream():
    """A real loopback LLM provider (tests/upstream.py): script replies, read `upstream.requests`."""
    from tests.upstream import Upstream

    with Upstream() as server:
        yield server


@pytest.fixture
def make_role(db):
    """A role; billing tests pass its balance policy (balance_enabled, start_balance, auto-refill)."""
    from accounts.models import Role

    def make(name: str | None = None, **fields):
        return Role.objects.create(name=name or f"ROLE{next(_seq)}", **fields)

    return make
