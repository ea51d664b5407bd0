"""Between `kact up` and the processes it starts: they end when it ends, however it ends.

`kact up` puts its PID in KACT_SUPERVISOR_PID of each Python process it starts (the background jobs, the
notifier, the API workers); `follow_supervisor()` in that process makes it stop when `kact up` is gone."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping

SUPERVISOR_PID = "KACT_SUPERVISOR_PID"
# After SIGTERM, an orphan has this long to stop in order (its servers may be gone too) before it exits.
ORPHAN_GRACE_SECONDS = 20.0
_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]


def dies_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen`: on Linux the child gets `sig` when the thread that started it
    ends (the parent process dying, even by SIGKILL, ends every thread); None on other systems.

    Start children from a thread that lives as long as they should (the main thread, or a supervising
    thread that outlives its child)."""
    prctl = _prctl()
    if prctl is None:
        return None

    def set_signal() -> None:
        # Runs in the forked child before exec: only the C call, prepared above.
        prctl(_PR_SET_PDEATHSIG, int(sig))

    return set_signal


def follow_supervisor(environ: Mapping[str, str] = os.environ, grace: float = ORPHAN_GRACE_SECONDS) -> None:
    """In a process `kact up` started: SIGTERM this process (its orderly stop) when `kact up` is gone, and
    exit with code 1 if that stop has not ended it `grace` seconds later. A no-op without KACT_SUPERVISOR_PID.

    On Linux the kernel sends the SIGTERM at once; elsewhere a thread notices within half a second that the
    parent changed."""
    raw = environ.get(SUPERVISOR_PID, "")
    if not raw.isdigit():
        return
    supervisor = int(raw)
    set_signal = dies_with_parent(signal.SIGTERM)
    if set_signal is not None:
        set_signal()
    threading.Thread(target=_watch, args=(supervisor, grace), name="follow-supervisor", daemon=True).start()


def _watch(supervisor: int, grace: float) -> None:
    # Checked first: the supervisor may have died before the parent-death signal was set.
    while os.getppid() == supervisor:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    os._exit(1)
