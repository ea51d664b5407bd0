"""`kact replay [--check]` (and `kact projections rebuild`, the same): every read model replayed from the event
store with a progress bar, compared with the live one and moved into place (`readmodels.replay`);
`kact projections status`: how far the course index is behind.

The database is found as `kact up` finds it: KACT_DATABASE_URL, else the embedded PostgreSQL in the data dir. If a
`kact up` serves that cluster (it holds the cluster's lock file), the command connects to it (its port from
`postmaster.pid`, its password from the data dir); otherwise it starts the cluster for the command and stops it
after. Rebuilding while `kact up` runs is safe: the new index replaces the old one in one transaction."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from kact_contracts import settings as catalogue
from kact_contracts.environment import SettingError
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskProgressColumn, TextColumn, \
    TimeRemainingColumn
from rich.text import Text

from scheduler.application.courses import Courses, event_store_env
from scheduler.embedded import LOOPBACK, EmbeddedPostgres, ServerError
from scheduler.readmodels.replay import Replayed, index_lag, replay, replay_env
from scheduler.runtime import resolve_runtime_settings
from scheduler.settings import Settings
from scheduler.storage import migrate


class EventRate(ProgressColumn):
    """Events read per second (notification ids: every event the store holds, indexed or not)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} events/s" if task.speed else "- events/s", style="progress.data.speed")


def run_projections(action: str, environ: Mapping[str, str], check: bool = False) -> int:
    """`action`: rebuild (replay and swap; with `check`, compare only) or status."""
    try:
        settings = Settings.from_values(catalogue.read(environ))
    except SettingError as error:
        for line in str(error).splitlines():
            print(f"kact: {line}", file=sys.stderr)
        return 2
    try:
        with _database(settings) as database_url:
            runtime = resolve_runtime_settings(settings, database_url=database_url, nats_url="")
            env = replay_env(event_store_env(runtime))
            courses, view = migrate(runtime, env)
            view.datastore.close()
            try:
                return _replay(runtime, env, courses, check) if action == "rebuild" else _status(runtime, courses)
            finally:
                courses.close()
    except ServerError as error:
        print(f"kact: {error}", file=sys.stderr)
        return 1


def _status(settings: Settings, courses: Courses) -> int:
    lag = index_lag(settings.database_url or "", settings.db_schema, courses)
    print(f"course index: at event {lag.position} of {lag.head}; {lag.behind} behind the event store, "
          f"{lag.waiting} of them indexed events still to apply")
    return 0


def _replay(settings: Settings, env: dict[str, str], courses: Courses, check: bool) -> int:
    """Exit code 0 once replayed and swapped; with `check`, 0 if the live read models agree, 1 if not."""
    console = Console(stderr=True)
    columns = (TextColumn("replaying"), BarColumn(bar_width=20), TaskProgressColumn(), EventRate(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[read]:,} course events"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("read models", total=None, read=0)

        def advance(position: int, head: int, read: int) -> None:
            progress.update(task, completed=position, total=max(head, 1), read=read)

        done = replay(settings.database_url or "", settings.db_schema, env, courses, advance, swap=not check)
    _report(done)
    if check:
        return 1 if done.differences else 0
    return _status(settings, courses)


def _report(done: Replayed) -> None:
    print(f"replayed {done.events:,} course events up to event {done.position} in {done.seconds:.1f} s "
          f"({done.rate:,.0f} events/s)")
    for table, count in done.rows.items():
        print(f"  {table:<22} {count} rows")
    if done.differences:
        print("the live read models differed from the replay:")
        for d in done.differences:
            print(f"  {d.table:<22} {d.only_live} rows only in the live table, {d.only_replayed} only in the replay")
    else:
        print("the live read models agreed with the replay")
    if done.swapped:
        print("the replayed read models are in place")


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """The database URL: the external one, the embedded cluster a running `kact up` serves, or that cluster
    started here (and stopped on leaving)."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    data_dir = Path(settings.data_dir).absolute()
    postgres = EmbeddedPostgres(data_dir)
    if not postgres.pgdata.is_dir():
        raise ServerError(f"{data_dir} holds no kact data (run `kact up` first, or set KACT_DATA_DIR)")
    running = _served_by_another(postgres)
    if running is not None:
        yield running
        return
    with postgres.start():
        yield postgres.url


def _served_by_another(postgres: EmbeddedPostgres) -> str | None:
    """The URL of the cluster if another process (a `kact up`) runs it, else None."""
    fd = os.open(postgres.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
    lines = (postgres.pgdata / "postmaster.pid").read_text().splitlines()
    port = int(lines[3])  # postmaster.pid: pid, data dir, start time, port, ...
    password = quote(postgres.password_file.read_text().strip(), safe="")
    return f"postgresql://{postgres.user}:{password}@{LOOPBACK}:{port}/{postgres.database}"
