"""Scale benchmark of booking (issue 13 point 9): free slots, next slots, plans and bookings at `--first` courses
(default 1,000) and again at `--courses` (default 50,000), in one database.

Seeds `--clinics` clinics (default 200) with `--clinicians-per-clinic` clinicians (10: 7 therapists, 3 prescribers)
and 3 rooms each through the directory, then courses with their sessions through the application (Scheduling's
use cases on the event store, in several processes at once, with a progress bar), spread over the months around
the simulated "now" and so over every phase. At each size it starts `kact up` as http_load.py does (simulated time,
X-Kact-Now) once per operation, and times `--requests` requests of it twice: first touch (nothing cached by that
server) and cached. Prints p50/p99 at both sizes and their ratio, flagging any above 2. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import queue
import random
import secrets
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time as clock, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from http_load import (  # noqa: E402 (the bench directory is no package)
    LOAD_SERVER_ENV,
    RESULTS_DIR,
    HttpError,
    RawConnection,
    code_version,
    drop_schema,
    latency_summary,
    redact,
    say,
    started_server,
    versions,
    wait_quiet,
)

# The simulated time of every measured request: a Wednesday, so that the day before it (when the "after medicine"
# courses had their medicine session) is a weekday and its integration window (48 h) ends on one; off the
# quarter-hour grid, so that every slot offered starts after it (a measured booking is withdrawn before it starts).
NOW = datetime(2027, 3, 3, 7, 50, tzinfo=UTC)
ZONES = ("Europe/Berlin", "Europe/London", "Europe/Madrid", "America/New_York", "America/Chicago")
ROOMS_PER_CLINIC = 3
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
OPENING = (8, 20)  # local hours, Monday to Friday
SHIFTS = ((8, 16), (12, 20))  # therapists' working hours, alternating
PRESCRIBER_HOURS = (8, 20)  # three medicine sessions a day (three hours each, and the buffer)
MEDICINE_BUFFER_MINUTES = 30  # after a medicine session its prescriber and room need this long free
# Courses start (their assessment) between 14 weeks before NOW and a week after it, and take about seven weeks:
# about half are completed at NOW, the rest are in every phase, and the weeks after NOW are about half booked.
STARTS_DAYS = (-98, 7)
# A regular course: (kind, partners, days after the session before, at least). The medicine session and the first
# integration session are placed together, the latter the next day (within the integration window, I4).
TEMPLATE = (
    ("assessment", ("a", "b"), 0),
    ("preparation", ("a",), 4),
    ("preparation", ("b",), 1),
    ("preparation", ("a", "b"), 4),
    ("preparation", ("a", "b"), 5),
    ("medicine", ("a", "b"), 5),
    ("integration", ("a", "b"), 1),
    ("integration", ("a", "b"), 6),
    ("integration", ("a", "b"), 7),
    ("integration", ("a", "b"), 7),
)
SEARCH_DAYS = 28  # how far past its earliest day the generator looks for a free hour
OPERATIONS = ("free_slots", "next_slots_integration", "next_slots_preparation", "plan", "book")
LABELS = {
    "free_slots": "free-slots (a week, 60 min)",
    "next_slots_integration": "next-slots integration",
    "next_slots_preparation": "next-slots preparation",
    "plan": "plan (1 medicine session)",
    "book": "book a session",
}
MAX_RATIO = 2.0


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- the layout: who, where, when


@dataclass(frozen=True)
class Staffing:
    therapists: int
    prescribers: int
    rooms: int = ROOMS_PER_CLINIC

    @classmethod
    def of(cls, clinicians: int) -> Staffing:
        if clinicians < 2:
            raise ValueError("a clinic needs at least a therapist and a prescriber")
        prescribers = max(1, round(clinicians * 0.3))
        return cls(clinicians - prescribers, prescribers)

    def hours(self, clinician: int) -> tuple[int, int]:
        """A clinician's working hours (local, Monday to Friday); clinicians are numbered therapists first."""
        return SHIFTS[clinician % 2] if clinician < self.therapists else PRESCRIBER_HOURS


@dataclass(frozen=True)
class PlannedSession:
    kind: str
    partners: tuple[str, ...]
    starts_at: datetime  # UTC
    ends_at: datetime
    clinician: int  # index among the clinic's clinicians (therapists first)
    room: int | None = None

    @property
    def recorded_at(self) -> datetime:
        """When the clinic records it held (a medicine session once its couple was discharged)."""
        return self.starts_at + timedelta(hours=4) if self.kind == "medicine" else self.ends_at + timedelta(hours=1)


@dataclass(frozen=True)
class PlannedCourse:
    index: int
    clinic: int
    role: str  # regular | after_medicine | fresh_first | fresh_final
    therapist: int  # the couple's therapist (a medicine session has a prescriber of its own)
    opened_at: datetime
    sessions: tuple[PlannedSession, ...] = ()

    @property
    def recorded(self) -> tuple[PlannedSession, ...]:
        return tuple(s for s in self.sessions if s.recorded_at <= NOW)

    @property
    def completes(self) -> bool:
        """A regular course whose sessions all took place (one stopped after its medicine session cannot)."""
        return self.role == "regular" and len(self.recorded) == len(self.sessions)

    @property
    def phase(self) -> str:
        """Where the course stands at NOW, for the report."""
        if not self.sessions:
            return "screened, nothing booked"
        if self.completes:
            return "completed"
        held = [s.kind for s in self.recorded]
        if not held:
            return "booked, nothing held yet"
        if "medicine" in held:
            return "integration" if "integration" in held or self.role == "regular" else "right after medicine"
        return "preparation" if "preparation" in held else "assessed"


class Timetable:
    """The busy local hours of one clinic's clinicians and rooms, by day: where the generator may put a session."""

    def __init__(self, zone: str, staffing: Staffing) -> None:
        self.zone, self.staffing = ZoneInfo(zone), staffing
        self.busy: dict[tuple[str, int, date], set[int]] = defaultdict(set)

    def options(self, day: date, length: int, clinician: int, room: int | None = None,
                busy: int | None = None) -> list[int]:
        """The local hours a session of `length` hours could start at on `day` with the clinician (and room),
        which then stay busy for `busy` hours (its length and buffer)."""
        if day.weekday() >= 5:
            return []
        lo, hi = self.staffing.hours(clinician)
        lo, hi = max(lo, OPENING[0]), min(hi, OPENING[1])
        keys = [("c", clinician, day), *([("r", room, day)] if room is not None else [])]
        span = busy or length
        return [h for h in range(lo, hi - length + 1)
                if not any(x in self.busy[k] for k in keys for x in range(h, h + span))]

    def take(self, day: date, hour: int, hours: int, clinician: int, room: int | None = None) -> None:
        for key in [("c", clinician, day), *([("r", room, day)] if room is not None else [])]:
            self.busy[key].update(range(hour, hour + hours))

    def at(self, day: date, hour: int) -> datetime:
        return datetime.combine(day, clock(hour), self.zone).astimezone(UTC)


class LayoutError(Exception):
    """The generator found no free hour for a session (the clinic is too full for the courses asked for)."""


@dataclass(frozen=True)
class Layout:
    clinics: int
    staffing: Staffing
    zones: tuple[str, ...]  # by clinic
    courses: tuple[PlannedCourse, ...]  # in seeding order


def layout(courses: int, first: int, clinics: int, clinicians_per_clinic: int, probes: int, seed: int = 13) -> Layout:
    """Every course of the run and its sessions, clash-free for every clinician and room, within opening and
    working hours. In seeding order: `probes` courses right after a medicine session and `probes` fresh ones
    (measured at both sizes, the fresh ones at the first), then regular courses at random start days (so that the
    first `first` are a sample of all), then `probes` fresh courses for the measurement at the final size."""
    if 2 * probes > first or probes > courses - first:
        raise ValueError(f"--requests {probes} needs --first >= {2 * probes} and --courses >= --first + {probes}")
    rng = random.Random(seed)
    staffing = Staffing.of(clinicians_per_clinic)
    zones = tuple(ZONES[i % len(ZONES)] for i in range(clinics))
    tables = [Timetable(zones[c], staffing) for c in range(clinics)]
    planned: list[PlannedCourse] = []
    for index in range(courses):
        clinic = index % clinics
        therapist = rng.randrange(staffing.therapists)
        prescriber = staffing.therapists + rng.randrange(staffing.prescribers)
        if index < probes:
            sessions = _after_medicine(tables[clinic], rng, therapist, prescriber)
            role = "after_medicine"
        elif index < 2 * probes or index >= courses - probes:
            sessions, role = (), "fresh_first" if index < 2 * probes else "fresh_final"
        else:
            local_now = NOW.astimezone(tables[clinic].zone).date()
            start = local_now + timedelta(days=rng.randint(*STARTS_DAYS))
            sessions, role = _regular(tables[clinic], rng, start, therapist, prescriber), "regular"
        opened_at = min([NOW - timedelta(days=1), *(s.starts_at - timedelta(days=2) for s in sessions[:1])])
        planned.append(PlannedCourse(index, clinic, role, therapist, opened_at, tuple(sessions)))
    return Layout(clinics, staffing, zones, tuple(planned))


def _session(table: Timetable, kind: str, partners: tuple[str, ...], day: date, hour: int, clinician: int,
             room: int | None = None) -> PlannedSession:
    length = 3 if kind == "medicine" else 1
    busy = length + (1 if kind == "medicine" else 0)  # the buffer after it, in whole hours
    table.take(day, hour, busy, clinician, room)
    return PlannedSession(kind, partners, table.at(day, hour), table.at(day, hour + length), clinician, room)


def _regular(table: Timetable, rng: random.Random, start: date, therapist: int,
             prescriber: int) -> list[PlannedSession]:
    sessions: list[PlannedSession] = []
    day = start
    steps = iter(TEMPLATE)
    for kind, partners, gap in steps:
        earliest = day + timedelta(days=gap) if sessions else day
        if kind == "medicine":
            _, follow_partners, follow_gap = next(steps)  # the first integration session, the next day
            day = _medicine_and_follow_up(table, rng, sessions, earliest, therapist, prescriber, partners,
                                          follow_partners, follow_gap)
            continue
        for offset in range(SEARCH_DAYS):
            candidate = earliest + timedelta(days=offset)
            options = table.options(candidate, 1, therapist)
            if options:
                sessions.append(_session(table, kind, partners, candidate, rng.choice(options), therapist))
                day = candidate
                break
        else:
            raise LayoutError(f"no free hour for a {kind} session from {earliest}")
    return sessions


def _medicine_and_follow_up(table: Timetable, rng: random.Random, sessions: list[PlannedSession], earliest: date,
                            therapist: int, prescriber: int, partners: tuple[str, ...],
                            follow_partners: tuple[str, ...], follow_gap: int) -> date:
    """The medicine session at the earliest hour any prescriber (the course's own first) and room have free on a
    day whose next day the therapist has an hour free; packed early in the day, so that three fit in it."""
    staffing = table.staffing
    prescribers = [prescriber, *(p for p in range(staffing.therapists, staffing.therapists + staffing.prescribers)
                                 if p != prescriber)]
    for offset in range(SEARCH_DAYS):
        day = earliest + timedelta(days=offset)
        after = table.options(day + timedelta(days=follow_gap), 1, therapist)
        if not after:
            continue
        found = [(hours[0], p, room) for p in prescribers for room in range(staffing.rooms)
                 if (hours := table.options(day, 3, p, room, busy=4))]
        if found:
            hour, chosen, room = min(found, key=lambda f: f[0])
            sessions.append(_session(table, "medicine", partners, day, hour, chosen, room))
            sessions.append(_session(table, "integration", follow_partners, day + timedelta(days=follow_gap),
                                     rng.choice(after), therapist))
            return day + timedelta(days=follow_gap)
    raise LayoutError(f"no free day for a medicine session from {earliest}")


def _after_medicine(table: Timetable, rng: random.Random, therapist: int, prescriber: int) -> list[PlannedSession]:
    """A course whose medicine session ended a few hours before NOW and whose integration is not booked yet: its
    assessment and preparation sessions placed backwards from the medicine session, with the template's gaps."""
    local_now = NOW.astimezone(table.zone).date()
    medicine = None
    for back in range(SEARCH_DAYS):
        day = local_now - timedelta(days=back)
        for room in range(table.staffing.rooms):
            hours = [h for h in table.options(day, 3, prescriber, room, busy=4)
                     if table.at(day, h) + timedelta(hours=5) <= NOW]  # recorded (start + 4 h) an hour before NOW
            if hours:
                medicine = (day, max(hours), room)
                break
        if medicine:
            break
    if medicine is None:
        raise LayoutError("no medicine session before NOW")
    day, hour, room = medicine
    before: list[PlannedSession] = []
    for index in range(len(TEMPLATE) - 1, -1, -1):
        kind, partners, _ = TEMPLATE[index]
        if kind == "integration":
            continue
        if kind == "medicine":
            before.append(_session(table, kind, partners, day, hour, prescriber, room))
            continue
        latest = day - timedelta(days=TEMPLATE[index + 1][2])
        for back in range(SEARCH_DAYS):
            candidate = latest - timedelta(days=back)
            options = table.options(candidate, 1, therapist)
            if options:
                before.append(_session(table, kind, partners, candidate, rng.choice(options), therapist))
                day = candidate
                break
        else:
            raise LayoutError(f"no free hour for a {kind} session before {latest}")
    return before[::-1]


# --------------------------------------------------------------------------- seeding: the directory


@dataclass(frozen=True)
class ClinicIds:
    id: str
    key: str  # the clinic's API key (kept in memory only)
    zone: str
    clinicians: tuple[str, ...]  # therapists first, as in Staffing
    rooms: tuple[str, ...]


async def seed_directory(database_url: str, schema: str, plan: Layout) -> list[ClinicIds]:
    """Clinics, clinicians and rooms, their hours and booking rules, through the directory as the operator."""
    import asyncpg

    from scheduler.api_keys import OPERATOR, ApiKeys
    from scheduler.directory import Directory
    from scheduler.domain.rules.booking import BookingRules, Buffer

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8,
                                     server_settings={"search_path": schema, "application_name": "bench-seed"})
    try:
        directory = Directory(pool, ApiKeys(pool, secrets.token_urlsafe(16), connect=None,
                                            clock=lambda: datetime.now(UTC)))
        staffing = plan.staffing
        rules = BookingRules(buffers={"medicine": Buffer(0, MEDICINE_BUFFER_MINUTES)})

        def week(hours: tuple[int, int]) -> list[dict[str, str]]:
            return [{"weekday": d, "opens": f"{hours[0]:02d}:00", "closes": f"{hours[1]:02d}:00"} for d in WEEKDAYS]

        async def clinic(c: int) -> ClinicIds:
            row, key = await directory.create_clinic(f"Scale clinic {c}", plan.zones[c], OPERATOR)
            clinic_id = row["id"]
            await directory.set_hours("clinic", clinic_id, week(OPENING), OPERATOR)
            await directory.set_booking_rules(clinic_id, rules, OPERATOR)
            clinicians = []
            for i in range(staffing.therapists + staffing.prescribers):
                role = "therapist" if i < staffing.therapists else "prescriber"
                clinician, _ = await directory.create_clinician(clinic_id, f"{role.title()} {i}", role, OPERATOR)
                await directory.set_hours("clinician", clinician["id"], week(staffing.hours(i)), OPERATOR)
                clinicians.append(str(clinician["id"]))
            rooms = [str((await directory.create_room(clinic_id, f"Room {r}", OPERATOR))["id"])
                     for r in range(staffing.rooms)]
            return ClinicIds(str(clinic_id), key, plan.zones[c], tuple(clinicians), tuple(rooms))

        found: list[ClinicIds] = []
        for chunk in range(0, plan.clinics, 8):
            found += await asyncio.gather(*(clinic(c) for c in range(chunk, min(plan.clinics, chunk + 8))))
        return found
    finally:
        await pool.close()


# --------------------------------------------------------------------------- seeding: courses, in worker processes


@dataclass(frozen=True)
class WorkerConfig:
    worker: int
    database_url: str
    schema: str
    cipher_key: str
    concurrency: int
    clinics: dict[int, ClinicIds]


class _NoIndex:
    """The seeding runs no use case that reads the course index."""

    def list_courses(self, *args: Any) -> list[dict[str, Any]]:
        return []

    def list_approvals(self, *args: Any) -> list[dict[str, Any]]:
        return []


def seed_worker(config: WorkerConfig, plans: list[PlannedCourse], progress: Any) -> None:
    """A process of its own (the interpreter lock): seeds `plans`, courses of its own clinics only, so that no
    two processes race for one calendar; reports progress on the queue."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        summary = asyncio.run(_seed_courses(config, plans, progress))
    except BaseException as exc:  # noqa: BLE001 - the parent must hear of it, whatever it was
        progress.put(("failed", config.worker, f"{type(exc).__name__}: {exc}"))
        raise
    progress.put(("done", config.worker, summary))


async def _seed_courses(config: WorkerConfig, plans: list[PlannedCourse], progress: Any) -> dict[str, Any]:
    import asyncpg

    from scheduler.application.calendars import CalendarIds, partner_calendar_key
    from scheduler.application.courses import Courses, event_store_env
    from scheduler.application.handlers import Scheduling
    from scheduler.directory import Directory
    from scheduler.settings import Settings

    settings = Settings(database_url=config.database_url, db_schema=config.schema, cipher_key=config.cipher_key,
                        db_pool_size=4)
    # Each process keeps the calendars of its clinics cached (as the API would), and creates no tables.
    courses = Courses(env={**event_store_env(settings), "AGGREGATE_CACHE_MAXSIZE": "20000", "CREATE_TABLE": "n"})
    pool = await asyncpg.create_pool(config.database_url, min_size=1, max_size=4,
                                     server_settings={"search_path": config.schema, "application_name": "bench-seed"})
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="seed")
    loop = asyncio.get_running_loop()

    async def in_thread(fn: Callable[[], Any]) -> Any:
        return await loop.run_in_executor(executor, fn)

    scheduling = Scheduling(courses, Directory(pool, None), _NoIndex(),  # type: ignore[arg-type]
                            CalendarIds(partner_calendar_key(config.cipher_key)), in_thread)
    seeder = CourseSeeder(scheduling, courses, config.clinics, in_thread)
    done, errors, failed, ids = 0, [], 0, {}
    reported = time.monotonic()
    gate = asyncio.Semaphore(config.concurrency)

    async def one(plan: PlannedCourse) -> None:
        nonlocal done, failed, reported
        async with gate:
            try:
                course_id = await seeder.seed(plan)
                if plan.role != "regular":
                    ids[plan.index] = course_id
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                failed += 1
                if len(errors) < 10:
                    errors.append(f"course {plan.index} ({plan.role}): {type(exc).__name__}: {exc}"[:1000])
            done += 1
            if time.monotonic() - reported > 0.25:
                progress.put(("progress", config.worker, done, seeder.commands))
                reported = time.monotonic()

    try:
        await asyncio.gather(*(one(p) for p in plans))
        progress.put(("progress", config.worker, done, seeder.commands))
    finally:
        await in_thread(courses.close)
        executor.shutdown(wait=False)
        await pool.close()
    return {"courses": done, "failed": failed, "errors": errors, "commands": seeder.commands, "ids": ids}


class CourseSeeder:
    """One course, as its home clinic would run it, in five commands: opened, both partners screened eligible,
    every session booked in one call (`book_plan`, judged session by session as bookings one after the other),
    then what took place before NOW recorded held in one command on the course (the medicine session's dose
    approvals requested and decided the day before it, its doses, vitals and discharge), completing the course
    once everything is held."""

    def __init__(self, scheduling: Any, courses: Any, clinics: dict[int, ClinicIds],
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]) -> None:
        self.scheduling, self.courses, self.clinics, self.in_thread = scheduling, courses, clinics, in_thread
        self.commands = 0

    async def seed(self, plan: PlannedCourse) -> UUID:
        from scheduler.api_keys import Principal
        from scheduler.application.handlers import Slotted
        from scheduler.domain.protocol import Protocol

        clinic = self.clinics[plan.clinic]
        home = Principal("clinic", clinic.id, clinic.id)
        therapist = UUID(clinic.clinicians[plan.therapist])
        course = await self.scheduling.open_course(
            home, model="together", protocol=Protocol(), first_dosed="a", now=plan.opened_at,
            partners={"a": f"scale-{plan.index}-a", "b": f"scale-{plan.index}-b"})
        for partner in ("a", "b"):
            await self.scheduling.record_screening(home, course.id, partner=partner, result="eligible",
                                                   clinician_id=therapist, notes="", now=plan.opened_at)
        self.commands += 3
        if not plan.sessions:
            return course.id  # type: ignore[no-any-return]
        booked = await self.scheduling.book_plan(home, course.id, [Slotted(
            s.kind, s.partners, s.starts_at, s.ends_at, None,
            UUID(clinic.rooms[s.room]) if s.room is not None else None, (UUID(clinic.clinicians[s.clinician]),))
            for s in plan.sessions], plan.opened_at)
        self.commands += 1
        if plan.recorded:
            await self._record(plan, course.id, [b.id for b in booked], home)
            self.commands += 1
        return course.id  # type: ignore[no-any-return]

    async def _record(self, plan: PlannedCourse, course_id: UUID, session_ids: list[str], home: Any) -> None:
        from scheduler.application.handlers import approval_id_for
        from scheduler.application.runner import run_steps_async

        clinic = self.clinics[plan.clinic]
        therapist = clinic.clinicians[plan.therapist]

        def recording(work: Any) -> None:
            course = work.course(course_id)
            for session, session_id in zip(plan.recorded, session_ids, strict=False):
                prescriber = clinic.clinicians[session.clinician]  # of a medicine session
                if session.kind != "medicine":
                    course.record_held(session_id=session_id, now=session.recorded_at, by=home.ref,
                                       clinician_id=therapist)
                    continue
                decided = session.starts_at - timedelta(days=1)
                doses, vitals = [], []
                dosed_at = session.starts_at + timedelta(minutes=10)
                for partner in ("a", "b"):
                    approval = approval_id_for(course_id)
                    course.request_dose_approval(approval_id=approval, session_id=session_id, partner=partner,
                                                 prescriber_id=prescriber, requested_mg=100,
                                                 prescriber_authorised=True, now=decided, by=home.ref)
                    course.decide_dose_approval(approval_id=approval, prescriber_id=prescriber, approve=True,
                                                now=decided, by=f"prescriber:{prescriber}")
                    doses.append({"partner": partner, "approval_id": approval, "mg": 100, "at": dosed_at})
                    vitals += [{"partner": partner, "stage": stage, "at": dosed_at + timedelta(minutes=minutes),
                                "systolic": 128, "diastolic": 82, "heart_rate": 74, "acceptable": True}
                               for stage, minutes in (("pre", -10), ("post", 40), ("discharge", 125))]
                course.record_held(session_id=session_id, now=session.recorded_at, by=home.ref,
                                   clinician_id=prescriber, doses=doses, vitals=vitals,
                                   discharged_at=dosed_at + timedelta(minutes=130))
            if plan.completes:
                course.complete(by=home.ref)

        await run_steps_async(self.courses.execution(recording, plan.recorded[-1].recorded_at), self.in_thread)


def seed_courses(config: dict[str, Any], clinics: list[ClinicIds], plans: list[PlannedCourse], workers: int,
                 label: str) -> dict[str, Any]:
    """Seed `plans` in `workers` processes (each the courses of every `workers`-th clinic), with a progress bar
    (courses/s, ETA); returns the rate, the failures and the ids of the measured courses."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed or 0:,.0f} courses/s", style="progress.data.speed")

    context = multiprocessing.get_context("spawn")  # nothing of this process's threads or pools in the children
    progress_queue = context.Queue()
    mine: dict[int, list[PlannedCourse]] = defaultdict(list)
    for plan in plans:
        mine[plan.clinic % workers].append(plan)
    processes = []
    for w, assigned in mine.items():
        cfg = WorkerConfig(w, config["database_url"], config["schema"], config["cipher_key"], config["concurrency"],
                           {c: clinics[c] for c in range(w, len(clinics), workers)})
        processes.append(context.Process(target=seed_worker, args=(cfg, assigned, progress_queue),
                                         name=f"seed-{w}", daemon=True))
    started = time.perf_counter()
    for process in processes:
        process.start()
    done: dict[int, int] = {}
    commands: dict[int, int] = {}
    summaries: dict[int, dict[str, Any]] = {}
    crashed: list[str] = []
    columns = (TextColumn(f"seeding {label}"), BarColumn(), MofNCompleteColumn(), Rate(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    console = Console(stderr=True)
    logged = time.monotonic()
    try:
        with Progress(*columns, console=console, refresh_per_second=4) as bar:
            task = bar.add_task("seed", total=len(plans))
            while len(summaries) + len(crashed) < len(processes):
                if not console.is_terminal and time.monotonic() - logged > 30:  # a log, not a live bar
                    logged = time.monotonic()
                    count, speed = sum(done.values()), bar.tasks[0].speed or 0
                    say(f"  seeding {label}: {count:,}/{len(plans):,}, {speed:,.0f} courses/s, ETA "
                        f"{(len(plans) - count) / speed if speed else float('nan'):,.0f} s")
                try:
                    message = progress_queue.get(timeout=1.0)
                except queue.Empty:
                    if not any(p.is_alive() for p in processes) and progress_queue.empty():
                        crashed.append("a seeding process ended without a word")
                        break
                    continue
                kind, worker = message[0], message[1]
                if kind == "progress":
                    done[worker], commands[worker] = message[2], message[3]
                    bar.update(task, completed=sum(done.values()))
                elif kind == "done":
                    summaries[worker] = message[2]
                    done[worker], commands[worker] = message[2]["courses"], message[2]["commands"]
                    bar.update(task, completed=sum(done.values()))
                else:
                    crashed.append(f"seeding process {worker}: {message[2]}")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    seconds = time.perf_counter() - started
    if crashed:
        raise SystemExit("seeding failed: " + "; ".join(crashed))
    total_commands = sum(s["commands"] for s in summaries.values())
    failed = sum(s["failed"] for s in summaries.values())
    result = {
        "courses": len(plans), "seconds": round(seconds, 1), "courses_per_s": round(len(plans) / seconds, 1),
        "commands": total_commands, "commands_per_s": round(total_commands / seconds, 1),
        "failed": failed, "errors": [e for s in summaries.values() for e in s["errors"]][:20],
        "workers": len(processes), "concurrency_per_worker": config["concurrency"],
    }
    result["ids"] = {i: str(c) for s in summaries.values() for i, c in s["ids"].items()}
    say(f"seeded {len(plans):,} courses in {seconds:,.0f} s: {result['courses_per_s']:,.1f} courses/s, "
        f"{result['commands_per_s']:,.0f} commands/s, {failed} failed")
    for error in result["errors"][:5]:
        say(f"  {error}")
    return result


def skip_seeded_history(database_url: str, schema: str) -> int:
    """Mark every event stored so far as relayed and indexed, so that the server's background jobs do not spend
    the measurement catching up with the seeded history (a million events at 50,000 courses). No measured
    operation reads the course index or the bus; the events of the measured bookings are relayed as usual."""
    import psycopg
    from psycopg import sql

    from scheduler.readmodels.freshness import TRACKING_TABLE as INDEX_TRACKING
    from scheduler.relay import TRACKING_TABLE as RELAY_TRACKING

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM courses_events").fetchone()[0]
        for table in (INDEX_TRACKING, RELAY_TRACKING):
            conn.execute(sql.SQL("INSERT INTO {0} (application_name, notification_id) VALUES ('courses', %s) "
                                 "ON CONFLICT (application_name) DO UPDATE SET notification_id = %s "
                                 "WHERE {0}.notification_id < %s").format(sql.Identifier(table)), (head, head, head))
    return int(head)


def store_size(database_url: str, schema: str) -> dict[str, Any]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        events = conn.execute("SELECT count(*) FROM courses_events").fetchone()[0]
        size = conn.execute("SELECT pg_total_relation_size('courses_events')").fetchone()[0]
    return {"events": events, "events_table_mb": round(size / 2**20)}


# --------------------------------------------------------------------------- measuring, over HTTP


@dataclass
class Targets:
    clinics: list[ClinicIds]
    after_medicine: list[tuple[str, str]]  # (course id, its clinic's key)
    fresh: list[tuple[str, str]]
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)  # a free slot per fresh course, to book
    booked: list[tuple[str, str, str]] = field(default_factory=list)  # (course, session, key) booked by measuring


class Client:
    """Sequential requests on one keep-alive connection, each timed as the client sees it."""

    def __init__(self, base_url: str, timeout: float) -> None:
        host, _, port = base_url.removeprefix("http://").partition(":")
        self.conn = RawConnection(host, int(port or 80))
        self.host_header = f"{host}:{port}"
        self.timeout = timeout

    async def send(self, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any, float]:
        payload = json.dumps(body).encode() if body is not None else None
        head = (f"{method} {path} HTTP/1.1\r\nhost: {self.host_header}\r\nauthorization: Bearer {key}\r\n"
                f"x-kact-now: {iso(NOW)}\r\n")
        if payload is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(self.timeout):
                status, raw = await self.conn.request(head.encode() + b"\r\n" + (payload or b""))
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            self.conn.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        elapsed = time.perf_counter_ns() - started
        return status, json.loads(raw) if raw else None, elapsed

    def close(self) -> None:
        self.conn.close()


def free_slots_path(clinic: ClinicIds, therapists: int) -> str:
    first = NOW.astimezone(ZoneInfo(clinic.zone)).date()
    query = urlencode({"kind": "preparation", "duration_minutes": 60, "from": first.isoformat(),
                       "to": (first + timedelta(days=6)).isoformat(),
                       "require": "|".join(clinic.clinicians[:therapists]),  # any one of its therapists
                       "limit": 500})
    return f"/v1/clinics/{clinic.id}/free-slots?{query}"


def booking_body(slot: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "preparation", "partners": ["a", "b"], "starts_at": slot["starts_at"], "ends_at": slot["ends_at"],
            "clinician_ids": slot["clinician_ids"], "room_id": slot["room_id"]}


async def measure_operation(client: Client, operation: str, targets: Targets, staffing: Staffing, requests: int,
                            first_touch: bool) -> dict[str, Any]:
    """`requests` requests of one operation, one after another; latency and what they answered."""
    samples: list[int] = []
    statuses: Counter[str] = Counter()
    found: list[int] = []
    errors: list[str] = []
    retried = 0

    def note(status: int, body: Any, expected: int, elapsed: int, what: str) -> None:
        statuses[str(status)] += 1
        if status == expected:
            samples.append(elapsed)
        elif len(errors) < 5:
            errors.append(f"{what}: {status} {json.dumps(body)[:300]}")

    for i in range(requests):
        if operation == "free_slots":
            clinic = targets.clinics[i % len(targets.clinics)]
            status, body, elapsed = await client.send("GET", free_slots_path(clinic, staffing.therapists), clinic.key)
            note(status, body, 200, elapsed, "free-slots")
            found.append(len(body.get("slots", [])) if status == 200 else 0)
        elif operation in ("next_slots_integration", "next_slots_preparation"):
            kind = operation.rsplit("_", 1)[1]
            course, key = (targets.after_medicine if kind == "integration" else targets.fresh)[i]
            status, body, elapsed = await client.send("GET", f"/v1/courses/{course}/next-slots?kind={kind}", key)
            note(status, body, 200, elapsed, f"next-slots {kind}")
            found.append(len(body.get("slots", [])) if status == 200 else 0)
            if status == 200 and kind == "preparation" and body["slots"]:
                targets.slots[course] = body["slots"][0]  # booked first-touch by the "book" operation
        elif operation == "plan":
            course, key = targets.fresh[i]
            status, body, elapsed = await client.send("POST", f"/v1/courses/{course}/plan", key,
                                                      {"medicine_sessions": 1})
            note(status, body, 200, elapsed, "plan")
            found.append(len(body.get("items", [])) if status == 200 else 0)
        elif operation == "book":
            course, key = targets.fresh[i]
            path = f"/v1/courses/{course}/sessions"
            slot = targets.slots.get(course) if first_touch else None
            for _attempt in range(3):
                if slot is None:  # find one first (not timed): this also caches what the booking reads
                    status, body, _ = await client.send("GET", f"/v1/courses/{course}/next-slots?kind=preparation"
                                                               "&limit=1", key)
                    slot = body["slots"][0] if status == 200 and body["slots"] else None
                    if slot is None:
                        errors.append(f"no slot to book for {course}: {status}")
                        break
                status, body, elapsed = await client.send("POST", path, key, booking_body(slot))
                if status == 409 and body and "double-booking" in body.get("type", ""):
                    retried += 1  # another measured course took it meanwhile: find another slot
                    slot = None
                    continue
                note(status, body, 201, elapsed, "book")
                if status == 201:
                    targets.booked.append((course, body["id"], key))
                break
    result = latency_summary(samples)
    result.update({"requests": requests, "statuses": dict(statuses), "errors": errors})
    if found:
        result["mean_found"] = round(sum(found) / len(found), 1)
    if retried:
        result["slot_taken_retries"] = retried
    return result


async def withdraw_bookings(client: Client, targets: Targets) -> int:
    """Cancel the sessions the measurement booked (not timed): the courses seeded after the first measurement
    were laid out without them, and take the hours they held."""
    refused = 0
    while targets.booked:
        course, session, key = targets.booked.pop()
        status, _, _ = await client.send("POST", f"/v1/courses/{course}/sessions/{session}/cancel", key,
                                         {"cancelled_by": "home_clinic", "reason_code": "other",
                                          "note": "scale bench: a measured booking, withdrawn"})
        refused += status != 200
    return refused


def measure_size(args: argparse.Namespace, config: dict[str, Any], targets: Targets, staffing: Staffing,
                 stamp: str, label: str) -> dict[str, Any]:
    """Each operation against a server of its own (started as http_load.py starts it): first touch, then
    cached. Booking: first touch books the slot its course's next-slots answer offered (read by an earlier
    server); cached books another one, found just before."""
    server_args = SimpleNamespace(
        server_env=[f"KACT_DB_SCHEMA={config['schema']}", f"KACT_CIPHER_KEY={config['cipher_key']}",
                    *args.server_env],
        startup_timeout=args.startup_timeout, keep_schema=False)

    async def both_passes(base_url: str, operation: str) -> tuple[dict[str, Any], dict[str, Any]]:
        client = Client(base_url, args.request_timeout)
        try:
            first = await measure_operation(client, operation, targets, staffing, args.requests, True)
            cached = await measure_operation(client, operation, targets, staffing, args.requests, False)
            if await withdraw_bookings(client, targets):
                cached.setdefault("errors", []).append("some measured bookings could not be withdrawn")
        finally:
            client.close()
        return first, cached

    results: dict[str, Any] = {}
    for operation in OPERATIONS:
        if operation not in args.operations:
            continue
        log = RESULTS_DIR / f"{stamp}.scale-{label}-{operation}.server.log"
        started = time.perf_counter()
        # Not inside an event loop: the server's clean-up runs one of its own (the stream of this run).
        with started_server(server_args, log, LOAD_SERVER_ENV) as server:
            startup_s = time.perf_counter() - started
            say(f"[{label}] {LABELS[operation]}: {args.requests} requests, first touch then cached ...")
            first, cached = asyncio.run(both_passes(server.base_url, operation))
        results[operation] = {"first_touch": first, "cached": cached, "server_startup_s": round(startup_s, 1)}
        say(f"  first touch p50 {first.get('p50_ms', 0):.1f} ms p99 {first.get('p99_ms', 0):.1f} ms; "
            f"cached p50 {cached.get('p50_ms', 0):.1f} ms p99 {cached.get('p99_ms', 0):.1f} ms; "
            f"statuses {first['statuses']} / {cached['statuses']}")
    return results


# --------------------------------------------------------------------------- report


def ratios(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for operation, passes in large.items():
        if operation not in small:
            continue
        for name in ("first_touch", "cached"):
            a, b = small[operation][name], large[operation][name]
            if a.get("count") and b.get("count"):
                out.setdefault(operation, {})[name] = {
                    "p50": round(b["p50_ms"] / a["p50_ms"], 2), "p99": round(b["p99_ms"] / a["p99_ms"], 2)}
    return out


def print_table(result: dict[str, Any]) -> None:
    def cell(x: dict[str, Any] | None, key: str) -> str:
        return f"{x[key]:>8.1f}" if x and x.get("count") else f"{'-':>8}"

    sizes = result["sizes"]
    small, large = (str(s) for s in sizes)
    seeding = result["seeding"]
    out = [f"booking at scale: {result['config']['clinics']} clinics, "
           f"{result['config']['clinics'] * result['config']['clinicians_per_clinic']:,} clinicians, "
           f"{int(small):,} -> {int(large):,} courses"]
    for phase in seeding:
        s = seeding[phase]
        out.append(f"  seeded {s['courses']:,} courses in {s['seconds']:,.0f} s ({s['courses_per_s']:,.1f} courses/s, "
                   f"{s['commands_per_s']:,.0f} commands/s, {s['workers']} processes), {s['failed']} failed")
    for size in (small, large):
        if size in result.get("store", {}):
            st = result["store"][size]
            cal = result["layout"]["therapist_calendar_sessions"][size]
            out.append(f"  at {int(size):,} courses: {st['events']:,} events ({st['events_table_mb']:,} MB); a "
                       f"therapist's calendar holds {cal['mean']:g} sessions on average, {cal['max']} at most")
    out.append(f"  {'':<30} {'':<12} {'p50 ms':>8} {'p99 ms':>8}   {'p50 ms':>8} {'p99 ms':>8}   {'ratio':>6} "
               f"{'ratio':>6}")
    out.append(f"  {'operation':<30} {'pass':<12} {'at ' + f'{int(small):,}':>17}   {'at ' + f'{int(large):,}':>17}   "
               f"{'p50':>6} {'p99':>6}")
    flagged = []
    for operation in OPERATIONS:
        for name in ("first_touch", "cached"):
            a = result["measured"].get(small, {}).get(operation, {}).get(name)
            b = result["measured"].get(large, {}).get(operation, {}).get(name)
            if a is None and b is None:
                continue
            r = result["ratios"].get(operation, {}).get(name)
            flag = ""
            if r and max(r["p50"], r["p99"]) > MAX_RATIO:
                flag = "  > 2x"
                flagged.append(f"{operation} ({name})")
            growth = f"{r['p50']:>6.2f} {r['p99']:>6.2f}" if r else f"{'-':>6} {'-':>6}"
            out.append(f"  {LABELS[operation]:<30} {name.replace('_', ' '):<12} {cell(a, 'p50_ms')} {cell(a, 'p99_ms')}"
                       f"   {cell(b, 'p50_ms')} {cell(b, 'p99_ms')}   {growth}{flag}")
    for size, operations in result["measured"].items():
        for operation, passes in operations.items():
            for name in ("first_touch", "cached"):
                answers = passes[name]
                if set(answers["statuses"]) - {"200", "201"} or answers["errors"]:
                    out.append(f"  unexpected answers at {size}, {operation} ({name}): {answers['statuses']} "
                               f"{answers['errors'][:2]}")
    out.append(f"  growth within {MAX_RATIO:g}x: " + ("yes" if not flagged else "NO: " + ", ".join(flagged)))
    print("\n".join(out))


def write(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--courses", type=int, default=50_000, help="the final size (default 50000)")
    p.add_argument("--first", type=int, default=1_000, help="the size measured first (default 1000)")
    p.add_argument("--clinics", type=int, default=200)
    p.add_argument("--clinicians-per-clinic", type=int, default=10)
    p.add_argument("--requests", type=int, default=200, help="requests per operation and pass (default 200)")
    p.add_argument("--operations", nargs="+", choices=OPERATIONS, default=list(OPERATIONS))
    p.add_argument("--workers", type=int, default=3, help="seeding processes (default 3)")
    p.add_argument("--concurrency", type=int, default=16, help="courses in flight per seeding process (default 16)")
    p.add_argument("--seed", type=int, default=13, help="of the layout's random choices")
    p.add_argument("--database-url", default=os.environ.get("KACT_DATABASE_URL"),
                   help="PostgreSQL (default KACT_DATABASE_URL); a fresh schema is made and dropped at the end")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the started servers (repeatable)")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--request-timeout", type=float, default=60.0)
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before measuring each size, wait up to this long for the machine to be idle (< 25%% busy "
                        "over 3 s): other work on a shared machine moves the figures a lot")
    p.add_argument("--keep-schema", action="store_true", help="keep the seeded schema (its name is printed)")
    p.add_argument("--no-save", action="store_true", help="print the table only, write no JSON")
    p.add_argument("--output", type=Path, help="JSON result path (default bench/results/<timestamp>.scale.json)")
    args = p.parse_args(argv)
    if not args.database_url:
        p.error("give --database-url or KACT_DATABASE_URL (seeding 50,000 courses wants a real PostgreSQL)")
    if not 0 < args.first < args.courses:
        p.error("0 < --first < --courses")
    if args.clinics < 1 or args.requests < 1 or args.workers < 1 or args.concurrency < 1:
        p.error("--clinics, --requests, --workers and --concurrency must be at least 1")
    return args


def calendar_sizes(plans: tuple[PlannedCourse, ...], staffing: Staffing) -> dict[str, float]:
    """Sessions per therapist's calendar (what reading one that is not cached replays): mean and most."""
    sessions: Counter[tuple[int, int]] = Counter(
        (p.clinic, s.clinician) for p in plans for s in p.sessions if s.clinician < staffing.therapists)
    return {"mean": round(sum(sessions.values()) / max(1, len(sessions)), 1), "max": max(sessions.values(), default=0)}


def targets_for(plans: tuple[PlannedCourse, ...], clinics: list[ClinicIds], ids: dict[int, str],
                role: str) -> list[tuple[str, str]]:
    return [(ids[p.index], clinics[p.clinic].key) for p in plans if p.role == role]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from eventsourcing.cryptography import AESCipher

    from scheduler.application.courses import event_store_env
    from scheduler.settings import Settings
    from scheduler.storage import migrate

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or RESULTS_DIR / f"{stamp}.scale.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    schema = f"bench_scale_{secrets.token_hex(4)}"
    config = {"database_url": args.database_url, "schema": schema, "cipher_key": AESCipher.create_key(32),
              "concurrency": args.concurrency}
    result: dict[str, Any] = {
        "started_at": stamp, "code": code_version(),
        "config": {**{k: v for k, v in vars(args).items() if k != "output"},
                   "database_url": redact(args.database_url), "schema": schema, "now": iso(NOW)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "versions": versions()},
        "sizes": [args.first, args.courses], "seeding": {}, "store": {}, "measured": {},
    }
    say(f"schema {schema} on {redact(args.database_url)}; laying out {args.courses:,} courses ...")
    started = time.perf_counter()
    plan = layout(args.courses, args.first, args.clinics, args.clinicians_per_clinic, args.requests, args.seed)
    result["layout"] = {
        "seconds": round(time.perf_counter() - started, 1),
        "staffing": asdict(plan.staffing),
        "sessions": sum(len(p.sessions) for p in plan.courses),
        "phases_at_first": dict(Counter(p.phase for p in plan.courses[:args.first])),
        "phases_at_final": dict(Counter(p.phase for p in plan.courses)),
        "therapist_calendar_sessions": {str(args.first): calendar_sizes(plan.courses[:args.first], plan.staffing),
                                        str(args.courses): calendar_sizes(plan.courses, plan.staffing)},
    }
    try:
        settings = Settings(database_url=args.database_url, db_schema=schema, cipher_key=config["cipher_key"])
        courses, view = migrate(settings, event_store_env(settings))
        courses.close()
        view.datastore.close()
        say(f"directory: {args.clinics} clinics, {args.clinics * args.clinicians_per_clinic:,} clinicians, "
            f"{args.clinics * ROOMS_PER_CLINIC} rooms ...")
        directory_started = time.perf_counter()
        clinics = asyncio.run(seed_directory(args.database_url, schema, plan))
        result["layout"]["directory_seconds"] = round(time.perf_counter() - directory_started, 1)
        ids: dict[int, str] = {}
        for label, plans in (("first", plan.courses[:args.first]), ("final", plan.courses[args.first:])):
            seeded = seed_courses(config, clinics, list(plans), args.workers, f"{label} {len(plans):,}")
            ids.update({int(i): c for i, c in seeded.pop("ids").items()})
            result["seeding"][label] = seeded
            size = args.first if label == "first" else args.courses
            result["store"][str(size)] = {**store_size(args.database_url, schema),
                                          "skipped_for_background_jobs": skip_seeded_history(args.database_url,
                                                                                             schema)}
            targets = Targets(clinics, targets_for(plan.courses, clinics, ids, "after_medicine"),
                              targets_for(plan.courses, clinics, ids, f"fresh_{label}"))
            result.setdefault("quiet_wait", {})[str(size)] = wait_quiet(args.wait_quiet)
            result["measured"][str(size)] = measure_size(args, config, targets, plan.staffing, stamp, f"{size}")
            result["ratios"] = ratios(result["measured"].get(str(args.first), {}),
                                      result["measured"].get(str(args.courses), {}))
            if not args.no_save:
                write(output, result)
    finally:
        if args.keep_schema:  # readable only with its cipher key: kept beside the results, owner-only
            key_file = output.with_suffix(".cipher.key")
            key_file.touch(mode=0o600)
            key_file.write_text(config["cipher_key"], encoding="utf-8")
            say(f"kept schema {schema}; its cipher key is in {key_file}")
        else:
            drop_schema(args.database_url, schema)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print_table(result)
    if not args.no_save:
        write(output, result)
        print(f"results: {output}")
    flagged = [op for op, passes in result["ratios"].items() for r in passes.values() if max(r.values()) > MAX_RATIO]
    return 1 if flagged or any(s["failed"] for s in result["seeding"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
