"""What every chat turn reads but admins rarely change — endpoints and their models, model specs,
roles with their allowed endpoints/specs, portal settings, a user's role and active flag — kept in
process memory, so a turn's permission check costs no database query.

Correctness across processes: a version string lives in the chat store (`chat.store`: Redis in
production, shared by every daphne). Saving or deleting any of those rows (admin, shell, importer —
any ORM save) bumps it through signals and announces it on a Redis channel; every turn checks it
first: a process whose memory holds another version drops everything and reloads on demand. So a
change is seen by the next turn on every process.

Checking costs no round trip in a daphne process: it follows the announcements (`listener`, started
with the first answer) and keeps the version it last read until one arrives. While it is not
subscribed (starting, Redis away) every check reads the version, as threads and Celery always do.
"""
from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.db import transaction

from chat import store
from chat.background import LoopTask

VERSION_KEY = "config-version"
MAX_ENTRIES = 20_000  # users are cached here too; beyond this the memory starts over

T = TypeVar("T")
_lock = threading.Lock()
_state: dict[str, Any] = {"version": None, "entries": {}}


def current_version() -> str:
    version = store.get_sync(VERSION_KEY)
    if version is None:
        store.add_sync(VERSION_KEY, uuid.uuid4().hex, None)
        version = store.get_sync(VERSION_KEY)
    return str(version)


# What the announcements tell this process (see module doc): whether it follows them on which
# loop, the version it last read while following, and a counter of announcements so that a read
# that raced with one is not kept.
_followed: dict[str, Any] = {"loop": None, "version": None, "epoch": 0}
CHANNEL = "config-changed"


async def acurrent_version() -> str:
    following = _followed["loop"] is asyncio.get_running_loop()
    if following and _followed["version"] is not None:
        return str(_followed["version"])
    epoch = _followed["epoch"]
    version = await store.get(VERSION_KEY)
    if version is None:
        await store.add(VERSION_KEY, uuid.uuid4().hex, None)
        version = await store.get(VERSION_KEY)
    if following and _followed["epoch"] == epoch:
        _followed["version"] = version
    return str(version)


def _forget_version(*_: Any) -> None:
    _followed["epoch"] += 1
    _followed["version"] = None


def _on_subscription(subscribed: bool) -> None:
    # Called by store.follow on the loop it runs on: from now on (until unsubscribed) that loop's
    # turns trust the version they read.
    _followed["loop"] = asyncio.get_running_loop() if subscribed else None
    _forget_version()


# Follows the announcements on daphne's loop (`chat.live` starts it with the first answer).
listener = LoopTask("chat-config", lambda: store.follow(CHANNEL, _forget_version, _on_subscription))


def bump_version(**_: Any) -> None:
    """Signal receiver: configuration changed; every process reloads on its next turn. Only once the
    change is committed — bumping earlier would let another process cache the old rows under the
    new version."""
    transaction.on_commit(_bump_now)


def _bump_now() -> None:
    version = uuid.uuid4().hex
    store.set_sync(VERSION_KEY, version, None)
    _forget_version()
    store.publish_sync(CHANNEL, version)


class Snapshot:
    """The cached configuration for one version (one turn holds one snapshot)."""

    def __init__(self, version: str, entries: dict[Any, Any]):
        self.version = version
        self.entries = entries

    def get(self, key: Any, load: Callable[[], T]) -> T:
        try:
            return cast(T, self.entries[key])
        except KeyError:
            value = load()
            if len(self.entries) >= MAX_ENTRIES:
                self.entries.clear()
            self.entries[key] = value
            return value


def snapshot() -> Snapshot:
    return _snapshot_of(current_version())


async def asnapshot() -> Snapshot:
    """`snapshot()` from the event loop (the version is read without a worker thread)."""
    return _snapshot_of(await acurrent_version())


def _snapshot_of(version: str) -> Snapshot:
    with _lock:
        if _state["version"] != version:
            _state["version"], _state["entries"] = version, {}
        return Snapshot(version, _state["entries"])


def connect_signals() -> None:
    from django.db.models.signals import m2m_changed, post_delete, post_save

    from accounts.models import Role, User
    from endpoints.models import Endpoint, EndpointModel, ModelSpec
    from portal.models import PortalSettings

    for model in (Endpoint, EndpointModel, ModelSpec, Role, PortalSettings, User):
        post_save.connect(_bump_unless_login, sender=model, dispatch_uid=f"chat-config-save-{model.__name__}")
        post_delete.connect(bump_version, sender=model, dispatch_uid=f"chat-config-delete-{model.__name__}")
    for through in (Role.allowed_endpoints.through, Role.allowed_model_specs.through):
        m2m_changed.connect(bump_version, sender=through, dispatch_uid=f"chat-config-m2m-{through.__name__}")


def _bump_unless_login(sender: Any, update_fields: Any = None, **kwargs: Any) -> None:
    # A login only stamps last_login: nothing a turn reads.
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    bump_version()
