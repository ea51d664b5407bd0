"""The `kact` command: `up` serves the scheduler and its servers, `replay` (or `projections rebuild`) replays the
event store into every read model, `projections status` says how far behind the course index is, `audit` exports a course's history, lists who read what and checks the stored events for
tampering, `db grant` gives the services' role its rights, `version` prints the version."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import textwrap
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from importlib.metadata import version as installed_version
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import uvicorn
from uvicorn.supervisors import Multiprocess

from kact_contracts import settings as catalogue
from kact_contracts import logs
from kact_contracts.environment import SettingError
from kact_contracts.lifecycle import SUPERVISOR_PID

from scheduler.embedded import EmbeddedNats, EmbeddedPostgres, ServerError, free_port
from scheduler.runtime import resolve_runtime_settings
from scheduler.secretfile import private_dir
from scheduler.settings import Settings
from scheduler.supervision import Helper, supervised


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kact",
        description="Scheduler for ketamine-assisted couple therapy. `kact up --help` lists the settings.",
    )
    parser.add_argument("--version", action="version", version=f"kact {installed_version('kact')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up_command = commands.add_parser(
        "up",
        help="serve the API in the foreground (embedded PostgreSQL and NATS unless "
        "KACT_DATABASE_URL / KACT_NATS_URL are set); Ctrl-C stops everything",
        description=textwrap.fill(
            "Serve the API in the foreground, with embedded PostgreSQL and NATS JetStream unless "
            "KACT_DATABASE_URL / KACT_NATS_URL name servers, the background jobs and the notifier. Ctrl-C "
            "stops everything. Options override the environment.", 100),
        epilog=catalogue.help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up_command.add_argument("--host", help="address the API listens on (KACT_HTTP_HOST)")
    up_command.add_argument("--port", type=_port, help="port the API listens on, 0: any free one (KACT_HTTP_PORT)")
    up_command.add_argument("--data-dir", type=Path, help="where data, keys and logs are kept (KACT_DATA_DIR)")
    up_command.add_argument("--access-log", action="store_true", help="log every HTTP request")
    projections = commands.add_parser(
        "projections", help="rebuild the course index from the event store, or report how far behind it is",
        description=textwrap.fill(
            "The course index (course list, calendars, approval queue, hosted sessions, deadlines) is a projection "
            "of the event store. `rebuild` writes it again from the first event into fresh tables and moves them "
            "into place in one transaction (a running `kact up` keeps serving meanwhile); `status` reports its lag. "
            "Both find the database as `kact up` does: KACT_DATABASE_URL, else the embedded PostgreSQL of the data "
            "dir (the one a running `kact up` serves, or started for the command and stopped after it).", 100))
    projections.add_argument("action", choices=["rebuild", "status"])
    projections.add_argument("--data-dir", type=Path, help="where data, keys and logs are kept (KACT_DATA_DIR)")
    replay_command = commands.add_parser(
        "replay", help="replay the event store into every read model, compare them with the live ones, swap",
        description=textwrap.fill(
            "Every read model derived from the course events (the course index: course list, calendars, approval "
            "queue, deadlines, hosted sessions, open holds; and the notifier's course facts) is written again from "
            "the first event into fresh tables, with a progress bar (events/s, ETA), compared with the live tables "
            "row by row, then moved into place in one transaction while the system runs. --check compares only "
            "(exit code 1 if any table differs). The database is found as `kact projections` finds it.", 100))
    replay_command.add_argument("--check", action="store_true",
                                help="compare only: leave the live read models as they are")
    replay_command.add_argument("--data-dir", type=Path, help="where data, keys and logs are kept (KACT_DATA_DIR)")
    audit = commands.add_parser("audit", help="the audit trails: export a course's history, who read what, verify "
                                              "the hash chain",
                                description="Audit: export a course's history for an auditor (export); every read "
                                            "of course data, who, when, the outcome (access-log); the stored "
                                            "events checked against their hash chain and signed heads (verify).")
    audit_actions = audit.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    _add_audit_export(audit_actions)
    _add_audit_access_log(audit_actions)
    _add_audit_verify(audit_actions)
    _add_db(commands)
    commands.add_parser("version", help="print the installed version")
    args = parser.parse_args(argv)

    if args.command == "version":
        print(installed_version("kact"))
        return 0
    if args.command == "audit":
        return args.run(args)  # type: ignore[no-any-return]
    if args.command == "db":
        return _db_grant(args)
    if args.command in ("projections", "replay"):
        from scheduler.projections_cli import run_projections  # the event store's libraries, only when needed

        environ = {**os.environ, **({"KACT_DATA_DIR": str(args.data_dir)} if args.data_dir else {})}
        if args.command == "replay":
            return run_projections("rebuild", environ, check=args.check)
        return run_projections(args.action, environ)
    overrides = {"KACT_HTTP_HOST": args.host, "KACT_HTTP_PORT": args.port, "KACT_DATA_DIR": args.data_dir}
    environ = {**os.environ, **{k: str(v) for k, v in overrides.items() if v is not None}}
    try:
        # Every setting, the notifier's too, parsed once: a bad one stops `kact up` here, each on a line of its
        # own, instead of a helper that restarts forever while the API says it is ready.
        values = catalogue.read(environ)
    except SettingError as error:
        for line in str(error).splitlines():
            print(f"kact: {line}", file=sys.stderr)
        return 2
    settings = Settings.from_values(values)
    # The API's own lines (and uvicorn's) on stderr; the helpers write theirs to their log files.
    logs.configure("api", settings.log_level, settings.log_format)
    try:
        up(settings, access_log=args.access_log, notifier_metrics_port=values["KACT_NOTIFIER_METRICS_PORT"])
    except KeyboardInterrupt:
        return 130
    except ServerError as error:
        print(f"kact: {error}", file=sys.stderr)
        return 1
    return 0


def _add_audit_verify(audit_actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verify = audit_actions.add_parser(
        "verify", help="check the event store against its hash chain and signed heads (tamper evidence)",
        description=textwrap.fill(
            "`verify` recomputes the hash chain over every stored event, compares it with the chain the jobs keep "
            "and with every signed head (the data dir's audit-heads.log and the chain_heads table), and prints "
            "\"ok\" or the first broken link (exit code 1). It finds the database as `kact projections` does and "
            "needs the audit key (KACT_AUDIT_KEY or the data dir's audit.key), not the cipher key.", 100))
    verify.add_argument("--data-dir", type=Path, help="where data, keys and logs are kept (KACT_DATA_DIR)")

    def run(args: argparse.Namespace) -> int:
        from scheduler.chain.cli import run_audit  # the event store's libraries, only when needed

        return run_audit("verify", _with_data_dir(args.data_dir))

    verify.set_defaults(run=run)


def _add_audit_export(audit_actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    export = audit_actions.add_parser(
        "export", help="write a course's history for an auditor: NDJSON, an HTML timeline, FHIR R4",
        description=textwrap.fill(
            "Write a course's history as files named after it: history.ndjson (one event a line, with who recorded "
            "it and its link in the hash chain), timeline.html (to read) and fhir-bundle.json (a FHIR R4 "
            "collection Bundle), owner-only. The export is logged in the access log (operator:cli:<user>, "
            "export_course) first. The database is found as `kact projections` finds it.", 100))
    export.add_argument("--course", required=True, type=UUID, metavar="ID", help="the course's id")
    export.add_argument("--format", choices=["ndjson", "html", "fhir", "all"], default="all",
                        help="what to write (default: all)")
    export.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="the directory to write into (created if missing; default: the current one)")
    export.add_argument("--data-dir", type=Path, help="where data, keys and logs are kept (KACT_DATA_DIR)")

    def run(args: argparse.Namespace) -> int:
        from scheduler.export_cli import run_export  # the event store's libraries, only when needed

        return run_export(args)

    export.set_defaults(run=run)


def _add_audit_access_log(audit_commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from scheduler.audit_cli import instant

    def when(text: str) -> object:
        try:
            return instant(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    command = audit_commands.add_parser(
        "access-log", help="every read of course data: who, when, which course, which action, the outcome",
        description=textwrap.fill(
            "Print the access log, newest first: every read of course data (API, calendar feeds, webhooks), by "
            "whom, of which course, with its outcome (ok, denied, failed). It finds the database as `kact "
            "projections` does.", 100))
    command.add_argument("--course", type=uuid.UUID, help="only reads of this course id")
    command.add_argument("--principal", help="only reads by this principal (clinic:<id>, operator:root, ...)")
    command.add_argument("--outcome", choices=["ok", "denied", "failed"], help="only reads with this outcome")
    command.add_argument("--from", dest="since", type=when, metavar="T", help="only reads at or after this instant (RFC 3339)")
    command.add_argument("--to", dest="until", type=when, metavar="T", help="only reads before this instant")
    command.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")
    command.add_argument("--json", action="store_true", help="one JSON object a line")
    command.add_argument("--data-dir", type=Path, help="where data, keys and logs are kept (KACT_DATA_DIR)")
    command.set_defaults(run=_audit_access_log)


def _audit_access_log(args: argparse.Namespace) -> int:
    from scheduler.application.audit import AccessQuery
    from scheduler.audit_cli import run_access_log

    where = AccessQuery(course_id=args.course, principal=args.principal, outcome=args.outcome, since=args.since,
                        until=args.until)
    return run_access_log(where, max(1, args.limit), args.json, _with_data_dir(args.data_dir))


def _add_db(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = commands.add_parser(
        "db", help="grant a database role the services' rights (events and access log append-only)",
        description=textwrap.fill(
            "`grant`: migrate the schema as its owner (KACT_DATABASE_URL, or the data dir's embedded PostgreSQL) "
            "and grant ROLE what the API, the jobs and the notifier need, with the stored events and the access "
            "log append-only (no UPDATE, DELETE or TRUNCATE). Then run them as ROLE with KACT_DB_MIGRATE=0. Run it "
            "again after every upgrade. `kact up` does this itself for its embedded PostgreSQL.", 100))
    db.add_argument("action", choices=["grant"])
    db.add_argument("--role", default="kact_app", help="the services' role, created beforehand (default kact_app)")
    db.add_argument("--print", dest="print_only", action="store_true",
                    help="print the GRANT and REVOKE statements instead of migrating and running them")
    db.add_argument("--data-dir", type=Path, help="where data, keys and logs are kept (KACT_DATA_DIR)")


def _db_grant(args: argparse.Namespace) -> int:
    from scheduler.db_roles import run_grant

    return run_grant(args.role, args.print_only, _with_data_dir(args.data_dir))


def _with_data_dir(data_dir: Path | None) -> dict[str, str]:
    return {**os.environ, **({"KACT_DATA_DIR": str(data_dir)} if data_dir else {})}


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 65535, got {text!r}")
    return port


def up(settings: Settings, *, access_log: bool = False, notifier_metrics_port: int | None = None) -> None:
    """Serve the API until SIGINT or SIGTERM, then stop it and every server started for it.

    Runs in the main thread (it handles signals)."""
    stack = ExitStack()
    previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        data_dir = private_dir(settings.data_dir).resolve()
        settings = replace(settings, data_dir=data_dir)
        places: list[tuple[str, str]] = [("data dir", str(data_dir))]

        if settings.database_url is None:
            _say(f"starting PostgreSQL (embedded, cluster in {data_dir / 'pg'}) ...")
            postgres = stack.enter_context(supervised(EmbeddedPostgres(data_dir).start()))
            database_url = postgres.url
            places.append(
                ("PostgreSQL", f"embedded, {_redacted(database_url)}, log {postgres.log_file}")
            )
        else:
            database_url = settings.database_url
            places.append(("PostgreSQL", f"external, {_redacted(database_url)}"))

        if settings.nats_url is None:
            _say(f"starting NATS JetStream (embedded, store in {data_dir / 'nats'}) ...")
            nats = stack.enter_context(supervised(EmbeddedNats(data_dir).start()))
            nats_url = nats.url
            places.append(
                (
                    "NATS",
                    f"embedded, {nats_url} (monitoring {nats.monitor_url}), log {nats.log_file}",
                )
            )
        else:
            nats_url = settings.nats_url
            places.append(("NATS", f"external, {_redacted(nats_url)}"))

        runtime = resolve_runtime_settings(settings, database_url=database_url, nats_url=nats_url)
        if settings.database_url is None:
            # The services connect as a role of their own, for which the stored events and the access log are
            # append-only; the cluster's owner only migrates and grants, here, before any of them starts.
            from scheduler.db_roles import PASSWORD_FILE, SERVICES_ROLE, services_settings

            runtime = services_settings(runtime, data_dir / PASSWORD_FILE)
            places.append(("database role", f"the services connect as {SERVICES_ROLE} (events and access log "
                                            "append-only)"))
        # Each helper serves its metrics on a loopback port of its own: the one set, else a free one (kept across
        # its restarts, so a scraper keeps finding it).
        jobs_metrics = settings.jobs_metrics_port or free_port()
        notifier_metrics = notifier_metrics_port or free_port()
        runtime = replace(runtime, jobs_metrics_port=jobs_metrics)
        # The API processes serve requests only; the course index, the relay and the deadline watcher run in
        # a process of their own (each job also fails over between processes through its advisory lock).
        jobs = stack.enter_context(supervised(Helper("jobs", "scheduler.jobs", runtime.as_env(), data_dir)))
        places.append(("jobs", f"pid {jobs.pid}, log {jobs.log_file}, metrics {_metrics_url(jobs_metrics)}"))
        runtime = replace(runtime, background_jobs=False)
        notifier = stack.enter_context(supervised(Helper(
            "notifier", "notifier", {**runtime.as_env(), "KACT_NOTIFIER_METRICS_PORT": str(notifier_metrics)},
            data_dir)))
        places.append(("notifier", f"pid {notifier.pid}, log {notifier.log_file}, "
                                   f"metrics {_metrics_url(notifier_metrics)}"))
        operator_key = (
            "(from KACT_OPERATOR_TOKEN)" if settings.operator_token else str(runtime.operator_token)
        )

        # Imported late: `kact version` must not need the whole application.
        from scheduler.bootstrap import create_app

        def announce(port: int) -> None:
            base = _base_url(runtime.http_host, port)
            lines = [
                ("API", base),
                ("docs UI", f"{base}/schema (OpenAPI: {base}/schema/openapi.json)"),
                ("operator key", operator_key),
                ("metrics", f"{_base_url(runtime.http_host, port)}/metrics"
                            + (" (no key: KACT_METRICS_PUBLIC)" if runtime.metrics_public else " (operator key)")),
                ("API log", "this terminal"),
                *places,
            ]
            _say(
                "kact is up\n"
                + "\n".join(f"  {name:<13} {value}" for name, value in lines)
                + "\nCtrl-C stops it."
            )

        if runtime.workers > 1:
            _serve_workers(runtime, access_log, announce, _metrics_dir(data_dir))
        else:
            config = uvicorn.Config(
                create_app(runtime),
                host=runtime.http_host,
                port=runtime.http_port,
                access_log=access_log,
                log_config=None,  # uvicorn's records go to the root logger: kact's format (`kact_contracts.logs`)
                log_level=runtime.log_level.lower(),
                lifespan="on",
            )
            _AnnouncingServer(config, announce).run()
    finally:
        # Children live in their own process groups, so a second Ctrl-C would only
        # abort their orderly shutdown; the stop itself kills them after a timeout.
        with _signals_ignored():
            stack.close()
        signal.signal(signal.SIGTERM, previous_sigterm)


# Readiness is asked of the API directly, whatever proxy the environment names (http_proxy and the like).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _announce_when_ready(host: str, port: int, announce: Callable[[int], None]) -> None:
    """Calls `announce(port)` from a thread of its own once `/health/ready` answers 200 on the address the API
    listens on (the API serves, and the background jobs process keeps the course index)."""

    def wait() -> None:
        url = f"{_base_url(host, port)}/health/ready"
        while True:
            try:
                with _DIRECT.open(url, timeout=2) as response:
                    if response.status == 200:
                        announce(port)
                        return
            except OSError:
                pass
            time.sleep(0.2)

    threading.Thread(target=wait, name="announce", daemon=True).start()


def _metrics_dir(data_dir: Path) -> Path:
    """The API workers' metrics files (prometheus-client's multiprocess mode), emptied at each start: a counter
    starts again from 0 with `kact up`, as it does with one process."""
    directory = data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700)
    return directory


def _serve_workers(runtime: Settings, access_log: bool, announce: Callable[[int], None], metrics_dir: Path) -> None:
    """Several API processes on one socket; each builds the app from the resolved settings in its environment,
    and follows this process (KACT_SUPERVISOR_PID): a worker ends when `kact up` does. Their metrics are kept in
    `metrics_dir` (set before they start: prometheus-client reads it when imported), so that whichever worker
    answers `/metrics` sums every worker's."""
    os.environ.update(runtime.as_env())
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    os.environ[SUPERVISOR_PID] = str(os.getpid())
    config = uvicorn.Config(
        "scheduler.asgi:create_from_env",
        factory=True,
        host=runtime.http_host,
        port=runtime.http_port,
        workers=runtime.workers,
        access_log=access_log,
        log_config=None,  # each worker configures kact's format (`scheduler.asgi`)
        log_level=runtime.log_level.lower(),
        lifespan="on",
    )
    sock = config.bind_socket()
    _announce_when_ready(runtime.http_host, sock.getsockname()[1], announce)
    Multiprocess(config, sockets=[sock]).run()


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server, calling `on_ready(port)` once it is ready (see `_announce_when_ready`)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            # The bound port, which differs from the configured one when that is 0.
            _announce_when_ready(self.config.host, self.servers[0].sockets[0].getsockname()[1], self._on_ready)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # The default SIGTERM action ends the process at once, skipping every `finally`
    # and leaving PostgreSQL and NATS running; an exception unwinds and stops them.
    raise SystemExit(128 + signum)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _base_url(host: str, port: int) -> str:
    """Where a client on this machine reaches an API listening on `host`: the loopback address for every
    address, else that address."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _metrics_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics"


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


def _say(text: str) -> None:
    print(text, flush=True)
