"""How `kact up` keeps its children running: each is watched, restarted when it dies, and dies with `kact up`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

from kact_contracts.lifecycle import SUPERVISOR_PID, dies_with_parent

from scheduler.embedded import ServerError
from scheduler.secretfile import open_private


class Child(Protocol):
    """A process `kact up` runs: an embedded server or a helper."""

    name: str
    log_file: Path

    @property
    def pid(self) -> int | None: ...

    def poll(self) -> int | None:
        """Its exit code once it exited (reaped: no zombie is left), else None."""

    def restart(self) -> None:
        """Start it again after it exited; raises `ServerError` or `OSError` when it cannot."""

    def stop(self) -> None:
        """Stop it in order, killing it after a timeout."""


class Supervised:
    """Watches a started child from a thread of its own and restarts it when it exits: after 1 s, the wait
    doubling up to 30 s while it keeps dying young or failing to start. Says so on stdout each time.

    The thread lives until the child is stopped: a child it restarted gets its parent-death signal when the
    thread that started it ends (see `dies_with_parent`), so that thread must not end first."""

    POLL_SECONDS = 0.5
    FIRST_DELAY = 1.0
    MAX_DELAY = 30.0
    YOUNG_SECONDS = 60.0  # a child that dies sooner than this after its start is dying young

    def __init__(self, child: Child) -> None:
        self.child = child
        self.restarts = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"supervise-{child.name}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        delay = self.FIRST_DELAY / 2
        started_at = time.monotonic()
        try:
            while not self._stopping.wait(self.POLL_SECONDS):
                code = self.child.poll()
                if code is None or self._stopping.is_set():
                    continue
                reason = f"exited (code {code})"
                while True:
                    young = time.monotonic() - started_at < self.YOUNG_SECONDS
                    delay = min(delay * 2, self.MAX_DELAY) if young else self.FIRST_DELAY
                    _say(f"kact: {self.child.name} {reason}; restarting it in {delay:.0f} s "
                         f"(log {self.child.log_file})")
                    if self._stopping.wait(delay):
                        return
                    with self._lock:
                        if self._stopping.is_set():
                            return
                        started_at = time.monotonic()
                        try:
                            self.child.restart()
                        except (ServerError, OSError) as error:
                            reason = f"did not start again ({_first_line(error)})"
                            continue
                        self.restarts += 1
                    _say(f"kact: {self.child.name} restarted (pid {self.child.pid})")
                    break
        finally:
            # Hold the thread until stop() has stopped the child (see the class docstring).
            self._released.wait()

    def stop(self) -> None:
        """No more restarts; stop the child, then let the watching thread end."""
        with self._lock:
            self._stopping.set()
        try:
            self.child.stop()
        finally:
            self._released.set()
            self._thread.join(5)


ChildT = TypeVar("ChildT", bound=Child)


@contextmanager
def supervised(child: ChildT) -> Iterator[ChildT]:
    """`child`, started, restarted while the block runs, and stopped at its end."""
    supervisor = Supervised(child)
    try:
        yield child
    finally:
        supervisor.stop()


class Helper:
    """A helper process of `kact up`: `python -m <module>`, its output appended to `<data dir>/<name>.log`
    (0600), stopped with SIGTERM (then SIGKILL after `STOP_TIMEOUT`). It gets SIGTERM when the thread that
    started it ends, and follows `kact up` itself where that signal does not exist (KACT_SUPERVISOR_PID)."""

    STOP_TIMEOUT = 30.0

    def __init__(self, name: str, module: str, env: dict[str, str], data_dir: Path) -> None:
        self.name, self.module = name, module
        self.env = {**env, SUPERVISOR_PID: str(os.getpid())}
        self.log_file = data_dir / f"{name}.log"
        self._process = self._spawn()

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.poll()

    def restart(self) -> None:
        self._process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open_private(self.log_file) as log:
            # A session of its own: a Ctrl-C in the terminal reaches `kact up` only, which stops the helper
            # in order.
            # Never the API workers' metrics directory (`cli._serve_workers`): a helper serves its own metrics.
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            return subprocess.Popen(
                [sys.executable, "-m", self.module], env={**env, **self.env},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                umask=0o077, preexec_fn=dies_with_parent(signal.SIGTERM),
            )

    def stop(self) -> None:
        process = self._process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _first_line(error: BaseException) -> str:
    return str(error).split("\n", 1)[0]


def _say(text: str) -> None:
    print(text, flush=True)
