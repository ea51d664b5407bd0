"""A process started by `kact up` ends when its parent is not `kact up` any more (the portable check, which
also covers systems without a parent-death signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

# Follows the supervisor named in the environment; "stubborn" ignores SIGTERM, as a hung orderly stop would.
_CHILD = """
import signal, sys, time
from kact_contracts.lifecycle import follow_supervisor
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("following", flush=True)
follow_supervisor(grace=0.5)
time.sleep(30)
"""


def _child(supervisor: int, mode: str = "orderly") -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, mode], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "KACT_SUPERVISOR_PID": str(supervisor)})
    assert child.stdout is not None and child.stdout.readline() == "following\n"
    return child


def test_a_child_whose_parent_is_not_its_supervisor_stops_itself() -> None:
    # The supervisor named is not this child's parent: as if `kact up` had died and the child been adopted.
    child = _child(supervisor=os.getpid() + 1_000_000)
    try:
        assert child.wait(5) == -signal.SIGTERM
    finally:
        child.kill()
        child.communicate()


def test_a_child_that_ignores_sigterm_exits_after_the_grace_period() -> None:
    child = _child(supervisor=os.getpid() + 1_000_000, mode="stubborn")
    try:
        assert child.wait(5) == 1
    finally:
        child.kill()
        child.communicate()


def test_a_child_of_its_live_supervisor_keeps_running() -> None:
    child = _child(supervisor=os.getpid())
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(1.5)
    finally:
        child.kill()
        child.communicate()
