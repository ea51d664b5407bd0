"""`kact up` supervises its children: it restarts a killed PostgreSQL or NATS, its children die with it, it
keeps its files private whatever the umask, and it refuses a bad setting in one line."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from e2e.test_kact_up import KACT, children_of, start, stop
from integration.api_support import Tenant

from scheduler.embedded import free_port

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def alive(process: psutil.Process) -> bool:
    try:
        # An exited process that nobody reaped (PID 1 in a container may not) is a zombie: it is gone.
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def created(post: Callable[[dict[str, str]], httpx.Response], attempts: int = 5) -> dict[str, object]:
    """What a well-behaved client does: repeat the command, with the same Idempotency-Key, while it gets 503
    (a pooled connection to the killed server fails once, then the pool replaces it)."""
    key = {"Idempotency-Key": f"retry-{time.monotonic_ns()}"}
    for _ in range(attempts):
        response = post(key)
        if response.status_code != 503:
            break
        time.sleep(0.2)
    assert response.status_code == 201, response.text
    return dict(response.json())


def descendants(pid: int) -> dict[psutil.Process, tuple[str, str]]:
    """Every process below `pid`, with its name and command line."""
    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        try:
            found[child] = (child.name(), " ".join(child.cmdline()))
        except psutil.NoSuchProcess:  # a short-lived one (an autovacuum worker) ended meanwhile
            continue
    return found


def postmaster(data_dir: Path) -> tuple[int, int]:
    """The PID and port in postmaster.pid."""
    lines = (data_dir / "pg" / "postmaster.pid").read_text().splitlines()
    return int(lines[0]), int(lines[3])


def nats_server(data_dir: Path) -> tuple[int, str]:
    """The PID in nats.pid and the address in nats.conf."""
    listen = next(line for line in (data_dir / "nats.conf").read_text().splitlines() if line.startswith("listen:"))
    return int((data_dir / "nats.pid").read_text().strip()), listen


def restarted(server: Callable[[Path], tuple[int, object]], data_dir: Path, old_pid: int) -> bool:
    try:
        return server(data_dir)[0] != old_pid
    except (OSError, ValueError, IndexError):  # the new server is rewriting its pid file
        return False


def bus_positions(data_dir: Path) -> tuple[int, int]:
    """The course event stream's last sequence and the notifier consumer's acknowledged floor (NATS
    monitoring): the relay publishes into the one, the notifier consumes the other."""
    monitor = next(line for line in (data_dir / "nats.conf").read_text().splitlines() if line.startswith("http:"))
    address = monitor.split(None, 1)[1].strip('"')
    report = httpx.get(f"http://{address}/jsz?accounts=true&streams=true&consumers=true", timeout=5).json()
    for account in report.get("account_details", []):
        for stream in account.get("stream_detail", []):
            consumers = [c for c in stream.get("consumer_detail", []) if c["name"] == "notifier"]
            if stream["name"] == "KACT_EVENTS" and consumers:
                return stream["state"]["last_seq"], consumers[0]["ack_floor"]["stream_seq"]
    return 0, 0


def flowed_past(data_dir: Path, published: int) -> bool:
    """Whether events after `published` reached the stream and the notifier acknowledged all of them."""
    last, acknowledged = bus_positions(data_dir)
    return last > published and acknowledged == last


def test_a_killed_postgres_or_nats_is_restarted_on_its_port_and_the_system_recovers(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "kact", free_port()
    process, operator_key = start(data_dir, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            Tenant.onboard(client, operator_key, "Before").open_course()  # pooled connections to both servers
            wait_for(lambda: flowed_past(data_dir, 0), 60, "no event went through NATS to the notifier")
            published = bus_positions(data_dir)[0]
            for name, server in (("PostgreSQL", postmaster), ("NATS", nats_server)):
                # kill -9: nothing shuts down in order, the lock files stay behind
                pid, address = server(data_dir)
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: not ready(port), 10, f"/health/ready still 200 with {name} killed")
                wait_for(lambda: restarted(server, data_dir, pid) and ready(port), 90,
                         f"{name} was not restarted, or the system did not recover")
                assert server(data_dir)[1] == address, f"{name} came back on another port"
                tenant = created(lambda key: client.post(
                    "/v1/clinics", json={"name": f"After {name}", "timezone": "Europe/Berlin"},
                    headers={"Authorization": f"Bearer {operator_key}", **key}))
                course = created(lambda key: client.post(
                    "/v1/courses", json={"model": "taking_turns", "partners": {"a": "a", "b": "b"}},
                    headers={"Authorization": f"Bearer {tenant['api_key']}", **key}))
                assert course["id"]
                # the relay publishes the new course's events, and the notifier consumes them
                wait_for(lambda: flowed_past(data_dir, published), 60,
                         f"events stopped flowing through NATS after {name} was restarted")
                published = bus_positions(data_dir)[0]
    finally:
        said = stop(process)
    assert process.returncode in (0, 130), said
    assert "kact: PostgreSQL exited (code -9); restarting it in 1 s" in said
    assert "kact: PostgreSQL restarted (pid" in said
    assert "kact: NATS exited (code -9); restarting it in 1 s" in said
    assert "kact: NATS restarted (pid" in said
    wait_for(lambda: not children_of(data_dir), 30, "Ctrl-C left restarted servers running")


def test_kill_9_of_kact_up_takes_its_children_along_and_the_next_start_is_clean(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "kact", free_port()
    # umask 000: nothing kact creates may become readable by others for it
    process, operator_key = start(data_dir, port, workers=2, umask=0o000)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            Tenant.onboard(client, operator_key).open_course()
        children = descendants(process.pid)
        names = [name for name, _ in children.values()]
        assert {"postgres", "nats-server"} <= set(names), names
        # the jobs, the notifier and uvicorn's two workers, at least
        assert sum(name.startswith("python") for name in names) >= 4, names
        process.kill()
        process.wait(10)
        deadline = time.monotonic() + 40
        while (survivors := [c for c in children if alive(c)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not survivors, "children outlived kact up: " + ", ".join(children[c][1] for c in survivors)
    finally:
        if process.poll() is None:
            stop(process)
    assert process.stdout is not None
    process.stdout.close()

    # the next start on the same data dir comes up, with what the killed one stored
    process, again = start(data_dir, port, umask=0o000)
    try:
        assert again == operator_key
        listed = httpx.get(f"http://127.0.0.1:{port}/v1/courses", headers={"Authorization": f"Bearer {operator_key}"},
                           timeout=10)
        assert listed.status_code == 200 and len(listed.json()["items"]) == 1
        assert_private(data_dir)
    finally:
        stop(process)


def assert_private(data_dir: Path) -> None:
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if os.geteuid() == 0:
        # PostgreSQL runs as the pgserver account, which must pass through to its cluster: its group only.
        assert (mode, data_dir.group()) == (0o710, "pgserver"), oct(mode)
    else:
        assert mode == 0o700, oct(mode)
    for name in ("operator.key", "cipher.key", "postgres.password", "postgres.log", "nats.log", "nats.conf",
                 "jobs.log", "notifier.log"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    for path in (data_dir / "nats").rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("KACT_HTTP_PORT", "80OO", "kact: KACT_HTTP_PORT must be an integer from 0 to 65535, got '80OO'"),
    ("KACT_WORKERS", "0", "kact: KACT_WORKERS must be an integer of at least 1, got '0'"),
    ("KACT_SIMULATED_TIME", "ture", "kact: KACT_SIMULATED_TIME must be 1/true/yes/on or 0/false/no/off, got 'ture'"),
    ("KACT_DATABASE_URL", "mysql://kact:secret@db/kact",
     "kact: KACT_DATABASE_URL must be a URL like postgresql://host:port (postgresql or postgres), got '***@db/kact'"),
    # the notifier's own settings are checked up front too
    ("KACT_WEBHOOK_MAX_ATTEMPTS", "many",
     "kact: KACT_WEBHOOK_MAX_ATTEMPTS must be an integer of at least 1, got 'many'"),
    ("KACT_APPROVAL_REMIND_AFTER", "-5",
     "kact: KACT_APPROVAL_REMIND_AFTER must be a number of seconds greater than 0, got '-5'"),
    ("KACT_NATS_CONSUMER", "notifier.1",
     "kact: KACT_NATS_CONSUMER must be 1 to 32 letters, digits, '_' or '-', got 'notifier.1'"),
    # a key is never shown, not even a bad one
    ("KACT_CIPHER_KEY", "c2VjcmV0",
     "kact: KACT_CIPHER_KEY must be the base64 of a key of 16 or 24 or 32 bytes, got 6 bytes"),
])
def test_an_invalid_setting_stops_kact_up_with_one_line(tmp_path: Path, variable: str, value: str,
                                                         message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KACT_")}
    env |= {"KACT_DATA_DIR": str(tmp_path / "kact"), variable: value}
    run = subprocess.run([str(KACT), "up"], env=env, capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr, run.stdout) == (2, message + "\n", "")
    assert not (tmp_path / "kact").exists()
