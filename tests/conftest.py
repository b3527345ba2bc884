"""Shared fixtures: factories for users, roles and endpoints; optional components that skip."""
from __future__ import annotations

import itertools
from types import ModuleType

import pytest

from tests.optional import require_module

_seq = itertools.count(1)


# --- optional components (tests/optional.py): skip locally when missing, fail in CI ----------------

@pytest.fixture(scope="session")
def python_ldap() -> ModuleType:
    """python-ldap (the `ldap` extra); it compiles against libldap2-dev and libsasl2-dev."""
    require_module("django_auth_ldap", "django-auth-ldap is not installed (pip install -e '.[ldap]').")
    return require_module("ldap", "python-ldap is not installed (it needs libldap2-dev and libsasl2-dev to build).")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Every test hashes with a fast hasher: the default one is slow on purpose, and tests that
    create users or sign in would spend most of their time in it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


# --- chat: websocket sessions, endpoints on the loopback upstream, daphne servers -----------------

@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """SQLite tests use a test database file instead of memory, so that a daphne subprocess started
    by a test (tests/test_chat_daphne.py) sees the same database."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        test = database.setdefault("TEST", {})
        if not test.get("NAME"):
            test["NAME"] = str(settings.DATA_DIR / "test_atrium.sqlite3")


@pytest.fixture
def builtin_roles(db):
    """USER and ADMIN as the data migration creates them (a transactional test's flush removes them)."""
    import importlib

    from django.apps import apps

    importlib.import_module("accounts.migrations.0003_builtin_roles").create_builtin_roles(apps, None)


@pytest.fixture
def chat_endpoint(make_endpoint, upstream):
    """An endpoint served by the loopback upstream; `provider` picks the wire protocol."""

    def make(name: str | None = None, *, provider: str = "openai_chat", models=("test-model", "other-model"), **fields):
        fields.setdefault("base_url", upstream.url if provider == "anthropic" else upstream.base_url)
        if provider == "anthropic":
            fields.setdefault("kind", "anthropic")
        return make_endpoint(name, models=models, provider=provider, **fields)

    return make


@pytest.fixture
def chatter(builtin_roles, make_user):
    return make_user("chatter", name="Chatty Chatter")


@pytest.fixture
def chatter_cookie(chatter):
    from tests.chatsocket import session_cookie

    return session_cookie(chatter)


@pytest.fixture
async def chat_socket(chatter_cookie):
    """A connected websocket of `chatter` on the real ASGI app; generations are awaited after."""
    from tests.chatsocket import open_socket

    sockets = []

    async def connect(cookie: str | None = None, **kwargs):
        connected, code, socket = await open_socket(cookie or chatter_cookie, **kwargs)
        assert connected, f"socket refused with code {code}"
        sockets.append(socket)
        return socket

    yield connect
    await _end_live_state(sockets)


@pytest.fixture
async def live_cleanup():
    """For tests that run answers without `chat_socket` (the REST API): the same end as its."""
    yield
    await _end_live_state()


async def _end_live_state(sockets=()):
    """After a test that ran answers: wait for them, close its sockets, stop this loop's listeners,
    close the database thread's connections and forget the loop-bound channel layer and store."""
    from chat import configcache, live, store

    await live.wait_for_generations()
    for socket in sockets:
        await socket.close()
    await live.stop_listener.cancel()
    await configcache.listener.cancel()
    await _close_db_thread_connections()
    await _forget_channel_layer()
    await store.aclose()


async def _forget_channel_layer():
    """Each test runs on its own event loop: start the next one with a fresh channel layer (the
    Redis layer keeps loop-bound state)."""
    from channels.layers import channel_layers

    layer = channel_layers.backends.pop("default", None)
    close = getattr(layer, "close_pools", None)
    if close is not None:
        await close()


@pytest.fixture
def eager_celery():
    """Run Celery tasks in-process even when REDIS_URL configures a real broker."""
    from portal.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


async def _close_db_thread_connections():
    """The database thread of async code keeps its connection; close it so the test database can
    be flushed and dropped."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    from chat.db import close_db_connections

    await sync_to_async(connections.close_all)()
    await sync_to_async(close_db_connections, thread_sensitive=False)()


@pytest.fixture(scope="session", autouse=True)
def _chat_db_threads_closed(django_db_setup, django_db_blocker):
    """Threads that keep their database connections between tests: close those before the test
    database is dropped (PostgreSQL refuses to drop a database with open connections)."""
    yield
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    from chat.db import close_db_connections

    close_db_connections()  # the chat's database threads
    # An async test's `sync_to_async(fn)` (thread-sensitive, no sync caller above it) runs on
    # asgiref's one process-wide thread, which outlives every test loop: close its connection the
    # same way, from a loop of its own.
    asyncio.run(sync_to_async(connections.close_all)())


# --- pages in a headless browser (tests/browser.py) -------------------------------------------------

@pytest.fixture
def chromium():
    """Debian's chromium (skips without it locally, fails under CI=true). Expectations wait up to
    15 s for the page: room for a busy machine, never a fixed sleep."""
    from tests.browser import require_chromium

    path = require_chromium()
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    yield path
    expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def daphne(request, django_db_setup, django_db_blocker):
    """A real daphne per test module, serving the test database (tests/daphne.py)."""
    from tests.daphne import Daphne

    with Daphne(name="daphne-" + request.module.__name__.rsplit(".", 1)[-1]) as server:
        yield server


@pytest.fixture
def gate():
    """Holds a paused answer of the loopback upstream until set (`stall_after=…, release=gate`);
    set at the end so no upstream thread waits on."""
    import threading

    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def shots(tmp_path):
    """Where screenshots go: docs/screenshots/ with ATRIUM_SCREENSHOTS=1, else the test's tmp dir."""
    import os
    from pathlib import Path

    wanted = os.environ.get("ATRIUM_SCREENSHOTS") == "1"
    folder = Path(__file__).resolve().parent.parent / "docs" / "screenshots" if wanted else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder
