"""Real daphne servers in subprocesses, on ephemeral ports, sharing this process's database (the
test database during tests) and Redis. Used by tests/test_chat_daphne.py and bench/ttft.py."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A DATABASE_URL for the database this process uses right now (the test database in tests)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}{db.get('HOST') or '127.0.0.1'}{port}/{db['NAME']}"


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a daphne that shares this process's database, Redis, secrets and data."""
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=database_url(),
        SECRET_KEY=settings.SECRET_KEY,
        ATRIUM_ENCRYPTION_KEYS=",".join(settings.ENCRYPTION_KEYS),
        ATRIUM_DATA_DIR=str(settings.DATA_DIR),
        CELERY_TASK_ALWAYS_EAGER="true",
        PYTHONPATH=str(ROOT),
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    env.update(extra)
    return env


class Daphne:
    """`daphne portal.asgi:application` (or `app`) on 127.0.0.1, port chosen by the OS.

    Several servers can share one port (`port=` another server's): each gets a listening socket of
    its own on it (SO_REUSEPORT) and the kernel spreads new connections over them, as a host
    running one daphne per core behind one address does."""

    def __init__(self, env: dict[str, str] | None = None, *, name: str = "daphne", port: int | None = None,
                 app: str = "portal.asgi:application", root: Path = ROOT):
        self.env = env if env is not None else server_env()
        self.app = app
        self.root = root  # the checkout whose code it serves (bench/ttft.py --baseline: another one)
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = port
        self.log = tempfile.NamedTemporaryFile(prefix=f"atrium-{name}-", suffix=".log", delete=False)

    def start(self, timeout: float = 60.0) -> Daphne:
        # The OS picks the port: this process binds port 0 and hands the listening socket to daphne.
        shared = self.port is not None
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        sockets = [listener]
        command = [sys.executable, "-m", "daphne", "--fd", str(listener.fileno())]
        if shared:  # the health check must reach this server: a port of its own for it
            sockets.append(socket.socket())
            sockets[1].bind(("127.0.0.1", 0))
            sockets[1].listen(16)
            command += ["-e", f"fd:fileno={sockets[1].fileno()}"]
        self.health_port = sockets[-1].getsockname()[1]
        try:
            self.process = subprocess.Popen(
                [*command, self.app], cwd=self.root, env=self.env, stdout=self.log,
                stderr=subprocess.STDOUT, pass_fds=tuple(s.fileno() for s in sockets),
            )
        finally:
            for sock in sockets:
                sock.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.output()[-3000:]}")

    def _answers(self) -> bool:
        try:
            with urlopen(f"http://127.0.0.1:{self.health_port}/api/health", timeout=2) as response:
                return response.status == 200
        except (OSError, ValueError):
            return False

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> Daphne:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
