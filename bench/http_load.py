"""Load benchmark of the kact scheduler: complete courses through the HTTP API, and raw save() in-process.

Default mode starts `kact up` as a child process (KACT_SIMULATED_TIME=1, a free port, a temporary data
dir, an operator token of its own) and stops it at the end (SIGINT, then wait). With KACT_DATABASE_URL set
the server uses that PostgreSQL, in a fresh random schema dropped at the end; otherwise it runs fully
embedded. `--base-url/--operator-key` target an already-running server instead.

Phase 1: N clients (default 32) on one asyncio loop, each onboarding its own clinic, then driving complete
courses (open, 2 screenings, assessment, 4 preparation sessions, a medicine session with two dose approvals
requested by the clinic and decided by the prescriber key, held with doses/vitals/discharge, integration
sessions, complete) for a fixed duration after a warm-up, or for a fixed number of courses.
Phase 2: Application.save() in-process against the same PostgreSQL, in a scratch schema.

Results: bench/results/<timestamp>.json and a table on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import uuid4

import msgspec

try:
    import psutil
except ImportError:  # CPU accounting is optional
    psutil = None  # type: ignore[assignment]

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
FLOOR_COMMANDS_PER_S = 500.0
FLOOR_P99_MS = 100.0
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
MAX_ERRORS_KEPT = 20


# --------------------------------------------------------------------------- small helpers


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(latencies_ns: list[int]) -> dict[str, Any]:
    values = sorted(v / 1e6 for v in latencies_ns)
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean_ms": round(sum(values) / len(values), 3),
        "p50_ms": round(percentile(values, 50) or 0, 3),
        "p95_ms": round(percentile(values, 95) or 0, 3),
        "p99_ms": round(percentile(values, 99) or 0, 3),
        "max_ms": round(values[-1], 3),
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Id(msgspec.Struct):
    id: str


class _Status(msgspec.Struct):
    status: str


_decode_id = msgspec.json.Decoder(_Id).decode
_decode_status = msgspec.json.Decoder(_Status).decode
_encode = msgspec.json.encode


# --------------------------------------------------------------------------- HTTP transports


class HttpError(Exception):
    """A transport failure (refused, reset, timed out): counted apart from non-2xx answers."""


class RawConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: requests are pre-built bytes, and the
    response is read by Content-Length (or chunked). Far cheaper per request than a general client."""

    IDLE_RECONNECT_S = 3.0  # uvicorn closes idle keep-alive connections after 5 s

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None or time.monotonic() - self.last_used > self.IDLE_RECONNECT_S:
            self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        reader, writer = self.reader, self.writer
        assert reader is not None
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                end = lower.index(b"\r\n", at + 2)
                length = int(lower[at + 17 : end])
                body = await reader.readexactly(length) if length else b""
            elif b"\r\ntransfer-encoding: chunked" in lower:
                body = await self._chunked(reader)
            else:
                body = await reader.read()
                self.close()
            if b"\r\nconnection: close" in lower:
                self.close()
            self.last_used = time.monotonic()
            return status, body
        except BaseException:
            self.close()
            raise

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Transport:
    """What a client sends through: `raw` (hand-rolled HTTP/1.1, default) or `httpx` (httpx.AsyncClient)."""

    def __init__(self, kind: str, base_url: str, clients: int, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise SystemExit("only http:// base URLs are supported")
        self.kind = kind
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = f"{self.host}:{self.port}"
        self.timeout = timeout
        self._httpx: Any = None
        if kind == "httpx":
            import httpx

            self._httpx = httpx.AsyncClient(
                base_url=base_url,
                timeout=timeout,
                limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
            )

    def connection(self) -> RawConnection | None:
        return RawConnection(self.host, self.port) if self.kind == "raw" else None

    async def send(
        self, conn: RawConnection | None, method: str, path: str, key: str, body: bytes | None, now: str | None
    ) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self.timeout):
                if conn is not None:
                    head = f"{method} {path} HTTP/1.1\r\nhost: {self.host_header}\r\nauthorization: Bearer {key}\r\n"
                    if now is not None:
                        head += f"x-kact-now: {now}\r\n"
                    if body is not None:
                        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                    return await conn.request(head.encode() + b"\r\n" + (body or b""))
                headers = {"authorization": f"Bearer {key}"}
                if now is not None:
                    headers["x-kact-now"] = now
                if body is not None:
                    headers["content-type"] = "application/json"
                response = await self._httpx.request(method, path, content=body, headers=headers)
                return response.status_code, response.content
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
            if conn is not None:
                conn.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # httpx.TransportError and friends
            if self._httpx is not None and type(exc).__module__.startswith("httpx"):
                raise HttpError(f"{type(exc).__name__}: {exc}") from exc
            raise

    async def aclose(self) -> None:
        if self._httpx is not None:
            await self._httpx.aclose()


# --------------------------------------------------------------------------- the course workload


class Stop(Exception):
    """The run's end was reached: the client abandons its current course."""


class CourseFailed(Exception):
    """A command was refused (non-2xx) or failed: the client abandons this course."""


@dataclass
class Recorder:
    """Every request of the run: (kind, end time, latency, status), split by method later."""

    measure_from_ns: int = 0
    measure_until_ns: int = 1 << 62
    samples: list[tuple[str, str, int, int, int]] = field(default_factory=list)  # method, kind, end, latency, status
    errors: list[dict[str, Any]] = field(default_factory=list)
    non_2xx: int = 0
    transport_errors: int = 0
    courses_started: list[int] = field(default_factory=list)
    courses_completed: list[int] = field(default_factory=list)
    courses_abandoned: int = 0

    def record(self, method: str, kind: str, start_ns: int, end_ns: int, status: int) -> None:
        self.samples.append((method, kind, end_ns, end_ns - start_ns, status))

    def error(self, entry: dict[str, Any]) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(entry)


class GcPauses:
    """The generator's own garbage collections while it runs (count, total and longest pause)."""

    def __init__(self) -> None:
        self.count, self.total_ns, self.max_ns, self._started = 0, 0, 0, 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
            return
        pause = time.perf_counter_ns() - self._started
        self.count, self.total_ns, self.max_ns = self.count + 1, self.total_ns + pause, max(self.max_ns, pause)

    def stop(self) -> dict[str, Any]:
        gc.callbacks.remove(self._callback)
        return {"collections": self.count, "total_ms": round(self.total_ns / 1e6, 1),
                "max_ms": round(self.max_ns / 1e6, 2)}


@dataclass
class TenantKeys:
    clinic_id: str
    clinic_key: str
    therapist_id: str
    prescriber_id: str
    prescriber_key: str


class CourseClient:
    """One simulated clinic: onboarded once, then drives its own courses one after another."""

    def __init__(self, index: int, transport: Transport, recorder: Recorder, integrations: int) -> None:
        self.index = index
        self.transport = transport
        self.recorder = recorder
        self.integrations = integrations
        self.conn = transport.connection()
        self.tenant: TenantKeys | None = None
        self.deadline_ns: int | None = None
        # --rate: this client sends a command every `pace_ns`, at `next_send_ns` on; 0 = closed loop
        self.pace_ns = 0
        self.next_send_ns = 0

    async def call(self, kind: str, method: str, path: str, key: str, body: bytes | None = None,
                   now: str | None = None, expect: int = 200) -> bytes:
        if self.deadline_ns is not None and time.perf_counter_ns() >= self.deadline_ns:
            raise Stop
        if self.pace_ns:
            # Paced: send at the scheduled moment; latency counts from it, so a server that falls behind
            # (and so delays the next sends) is charged for the wait too (no coordinated omission).
            start, self.next_send_ns = self.next_send_ns, self.next_send_ns + self.pace_ns
            delay = start - time.perf_counter_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
        else:
            start = time.perf_counter_ns()
        try:
            status, payload = await self.transport.send(self.conn, method, path, key, body, now)
        except HttpError as exc:
            end = time.perf_counter_ns()
            self.recorder.record(method, kind, start, end, 0)
            self.recorder.transport_errors += 1
            self.recorder.error({"kind": kind, "method": method, "path": path, "status": None, "error": str(exc),
                                 "latency_ms": round((end - start) / 1e6, 3)})
            raise CourseFailed(str(exc)) from None
        end = time.perf_counter_ns()
        self.recorder.record(method, kind, start, end, status)
        if not 200 <= status < 300 or status != expect:
            if not 200 <= status < 300:
                self.recorder.non_2xx += 1
            self.recorder.error({"kind": kind, "method": method, "path": path, "status": status, "expected": expect,
                                 "body": payload[:2000].decode("utf-8", "replace"),
                                 "latency_ms": round((end - start) / 1e6, 3)})
            raise CourseFailed(f"{method} {path}: {status}")
        return payload

    # -- onboarding (not part of the measured window)

    async def onboard(self, operator_key: str) -> None:
        clinic = msgspec.json.decode(await self.call(
            "setup:create_clinic", "POST", "/v1/clinics", operator_key,
            _encode({"name": f"Bench clinic {self.index}", "timezone": "Europe/Berlin"}), expect=201))
        path = f"/v1/clinics/{clinic['id']}/clinicians"
        therapist = msgspec.json.decode(await self.call(
            "setup:create_clinician", "POST", path, clinic["api_key"],
            _encode({"name": "Therapist", "role": "therapist"}), expect=201))
        prescriber = msgspec.json.decode(await self.call(
            "setup:create_clinician", "POST", path, clinic["api_key"],
            _encode({"name": "Prescriber", "role": "prescriber"}), expect=201))
        self.tenant = TenantKeys(clinic["id"], clinic["api_key"], therapist["id"], prescriber["id"],
                                 prescriber["api_key"])
        self.courses_begun = 0

    def _prepare_bodies(self, t0: datetime) -> None:
        """Every body of one course that does not depend on ids minted by the server. Each course of a client is
        another couple, and starts two weeks after the previous one: its therapist is never in two sessions at
        once (I10, which the server's calendars enforce)."""
        t = self.tenant
        assert t is not None
        hour, day = timedelta(hours=1), timedelta(days=1)
        couple = f"{self.index}-{self.courses_begun}"
        self.open_body = _encode({"model": "together", "partners": {"a": f"partner-a-{couple}",
                                                                    "b": f"partner-b-{couple}"},
                                  "protocol": {"min_integration_sessions": self.integrations}})
        self.screening_bodies = [
            _encode({"partner": p, "result": "eligible", "clinician_id": t.therapist_id, "notes": f"screening note {p}"})
            for p in ("a", "b")
        ]

        def booking(kind: str, start: datetime, hours: float, partners: list[str]) -> tuple[bytes, str]:
            end = start + timedelta(hours=hours)
            body = _encode({"kind": kind, "starts_at": iso(start), "ends_at": iso(end), "partners": partners,
                            "clinician_ids": [t.therapist_id]})
            return body, iso(end + hour)  # recorded an hour after it ends

        self.assessment = booking("assessment", t0, 1, ["a", "b"])
        plan = [["a"], ["b"], ["a", "b"], ["a", "b"]]
        self.preparations = [booking("preparation", t0 + (i + 1) * day, 1, p) for i, p in enumerate(plan)]
        start = t0 + (len(plan) + 1) * day
        self.medicine = booking("medicine", start, 3, ["a", "b"])
        self.approval_now = iso(start - day)  # approved the day before
        self.booking_now = iso(t0 - day)  # every session is booked ahead (a booking in the past is refused)
        dosed_at = start + timedelta(minutes=10)
        self.dosed_at = dosed_at
        end = start + 3 * hour
        self.integrations_booked = [booking("integration", end + timedelta(hours=20 + 24 * i), 1, ["a", "b"])
                                    for i in range(self.integrations)]
        self.held_body = _encode({"outcome": "held", "clinician_id": t.therapist_id})
        self.decide_body = _encode({"approve": True})

    def medicine_record(self, approvals: dict[str, str]) -> bytes:
        doses, vitals = [], []
        for partner, approval_id in approvals.items():
            doses.append({"partner": partner, "approval_id": approval_id, "mg": 100, "at": iso(self.dosed_at)})
            for stage, minutes in (("pre", -10), ("post", 40), ("discharge", 125)):
                vitals.append({"partner": partner, "stage": stage,
                               "at": iso(self.dosed_at + timedelta(minutes=minutes)),
                               "systolic": 128, "diastolic": 82, "heart_rate": 74, "acceptable": True})
        return _encode({"outcome": "held", "clinician_id": self.tenant.therapist_id, "doses": doses, "vitals": vitals,
                        "discharged_at": iso(self.dosed_at + timedelta(minutes=130)), "notes": "calm session"})

    # -- one complete course

    async def course(self, read_back: bool) -> None:
        t = self.tenant
        assert t is not None
        self._prepare_bodies(T0 + self.courses_begun * timedelta(days=14))
        self.courses_begun += 1
        key = t.clinic_key
        cid = _decode_id(await self.call("open_course", "POST", "/v1/courses", key, self.open_body, expect=201)).id
        base = f"/v1/courses/{cid}"
        for body in self.screening_bodies:
            await self.call("record_screening", "POST", f"{base}/screenings", key, body)

        async def book_and_hold(booked: tuple[bytes, str]) -> str:
            body, after = booked
            sid = _decode_id(await self.call("book_session", "POST", f"{base}/sessions", key, body,
                                             now=self.booking_now, expect=201)).id
            await self.call("record_session", "POST", f"{base}/sessions/{sid}/record", key, self.held_body, now=after)
            return sid

        await book_and_hold(self.assessment)
        for booked in self.preparations:
            await book_and_hold(booked)
        body, after = self.medicine
        medicine = _decode_id(await self.call("book_session", "POST", f"{base}/sessions", key, body,
                                              now=self.booking_now, expect=201)).id
        approvals = {}
        for partner in ("a", "b"):
            request = _encode({"session_id": medicine, "partner": partner, "prescriber_id": t.prescriber_id,
                               "requested_mg": 100})
            approval = _decode_id(await self.call("request_dose_approval", "POST", f"{base}/dose-approvals", key,
                                                  request, now=self.approval_now, expect=201)).id
            await self.call("decide_dose_approval", "POST", f"/v1/dose-approvals/{approval}/decision",
                            t.prescriber_key, self.decide_body, now=self.approval_now)
            approvals[partner] = approval
        await self.call("record_medicine_session", "POST", f"{base}/sessions/{medicine}/record", key,
                        self.medicine_record(approvals), now=after)
        for booked in self.integrations_booked:
            await book_and_hold(booked)
        done = _decode_status(await self.call("complete_course", "POST", f"{base}/complete", key, b"{}"))
        if done.status != "completed":
            self.recorder.error({"kind": "complete_course", "path": f"{base}/complete",
                                 "error": f"course status is {done.status!r} after complete"})
            raise CourseFailed("not completed")
        if read_back:
            state = _decode_status(await self.call("get_course", "GET", base, key))
            if state.status != "completed":
                raise CourseFailed("read back a course that is not completed")

    async def run(self, claim_course: Callable[[], bool], read_back: bool) -> None:
        try:
            while claim_course():
                self.recorder.courses_started.append(time.perf_counter_ns())
                try:
                    await self.course(read_back)
                except CourseFailed:
                    self.recorder.courses_abandoned += 1
                    continue
                self.recorder.courses_completed.append(time.perf_counter_ns())
        except Stop:
            pass
        finally:
            if self.conn is not None:
                self.conn.close()


def commands_per_course(integrations: int) -> int:
    # open, 2 screenings, (1 assessment + 4 preparations + integrations) x (book, record),
    # medicine: book, 2 x (request, decide), record; complete
    return 1 + 2 + 2 * (5 + integrations) + 6 + 1


async def http_phase(args: argparse.Namespace, base_url: str, operator_key: str) -> dict[str, Any]:
    transport = Transport(args.client, base_url, args.clients, args.request_timeout)
    recorder = Recorder()
    clients = [CourseClient(i, transport, recorder, args.integrations) for i in range(args.clients)]
    try:
        say(f"onboarding {len(clients)} clinics ...")
        setup_start = time.perf_counter()
        try:
            async with asyncio.timeout(max(60.0, args.request_timeout * 3)):
                await asyncio.gather(*(c.onboard(operator_key) for c in clients))
        except CourseFailed as exc:
            raise SystemExit(f"onboarding failed: {exc}\n{json.dumps(recorder.errors, indent=2)}") from None
        setup_s = time.perf_counter() - setup_start
        setup_samples = list(recorder.samples)
        recorder.samples.clear()

        # The generator's own garbage collections pause every client at once: reported, to rule them out.
        gc_pauses = GcPauses()
        started = time.perf_counter_ns()
        recorder.measure_from_ns = started + int(args.warmup * 1e9)
        if args.rate:
            pace_ns = int(len(clients) * 1e9 / args.rate)
            for c in clients:  # spread evenly: client i sends i/N of a pace after client 0
                c.pace_ns, c.next_send_ns = pace_ns, started + c.index * pace_ns // len(clients)
        budget = {"left": args.courses}
        if args.courses:
            hard_bound = args.warmup + args.max_seconds

            def claim() -> bool:
                if budget["left"] <= 0:
                    return False
                budget["left"] -= 1
                return True
        else:
            deadline = recorder.measure_from_ns + int(args.duration * 1e9)
            recorder.measure_until_ns = deadline
            for c in clients:
                c.deadline_ns = deadline
            hard_bound = args.warmup + args.duration + args.request_timeout + 10

            def claim() -> bool:
                return time.perf_counter_ns() < deadline

        mode = f"{args.courses} courses" if args.courses else f"{args.duration:g} s"
        mode += f", paced at {args.rate:g} commands/s in all" if args.rate else ", closed loop"
        say(f"driving courses: {args.clients} clients, warm-up {args.warmup:g} s, then {mode} "
            f"({commands_per_course(args.integrations)} commands per course, client={args.client}) ...")
        cpu = CpuWatch(args.server_pid, args.cpu_database_url)
        profiler = None
        tasks = [asyncio.ensure_future(c.run(claim, args.read_back)) for c in clients]
        warm = asyncio.ensure_future(asyncio.sleep(args.warmup))
        await asyncio.wait([warm, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if warm.done():
            cpu.start()
            profiler = start_profiler(args)
        done, pending = await asyncio.wait(tasks, timeout=max(1.0, hard_bound - (time.perf_counter_ns() - started) / 1e9))
        timed_out = bool(pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        finished = time.perf_counter_ns()
        if not args.courses:
            window_end = min(finished, recorder.measure_until_ns)
        else:
            window_end = finished
        generator_gc = gc_pauses.stop()
        cpu_report = cpu.stop() if cpu.started else None
        profile_report = stop_profiler(profiler)
    finally:
        await transport.aclose()

    window_s = max(1e-9, (window_end - recorder.measure_from_ns) / 1e9)
    in_window = [s for s in recorder.samples if recorder.measure_from_ns <= s[2] <= window_end]
    if args.samples_out:  # every request in the window: when it ended (s into the window), its latency, its kind
        with open(args.samples_out, "w", encoding="utf-8") as f:
            # end_mono: CLOCK_MONOTONIC seconds (time.perf_counter() on Linux), comparable with the server's
            f.write("end_s,end_mono,latency_ms,method,kind,status\n")
            f.writelines(f"{(s[2] - recorder.measure_from_ns) / 1e9:.4f},{s[2] / 1e9:.4f},{s[3] / 1e6:.3f},{s[0]},"
                         f"{s[1]},{s[4]}\n" for s in in_window)
    posts = [s for s in in_window if s[0] == "POST"]
    gets = [s for s in in_window if s[0] == "GET"]
    by_kind: dict[str, list[int]] = defaultdict(list)
    for s in posts:
        by_kind[s[1]].append(s[3])
    completed = [t for t in recorder.courses_completed if recorder.measure_from_ns <= t <= window_end]
    non_2xx_in_run = sum(1 for s in recorder.samples if s[4] and not 200 <= s[4] < 300)
    result = {
        "window_s": round(window_s, 3),
        "timed_out": timed_out,
        "commands": {
            "count": len(posts),
            "per_s": round(len(posts) / window_s, 1),
            "latency": latency_summary([s[3] for s in posts]),
            "by_kind": {k: {**latency_summary(v), "per_s": round(len(v) / window_s, 1)}
                        for k, v in sorted(by_kind.items())},
        },
        "gets": {"count": len(gets), "per_s": round(len(gets) / window_s, 1),
                 "latency": latency_summary([s[3] for s in gets])},
        "courses": {
            "completed_in_window": len(completed),
            "per_s": round(len(completed) / window_s, 2),
            "completed_total": len(recorder.courses_completed),
            "started_total": len(recorder.courses_started),
            "abandoned_on_error": recorder.courses_abandoned,
            "commands_per_course": commands_per_course(args.integrations),
        },
        "requests_total_incl_warmup": len(recorder.samples),
        "non_2xx": non_2xx_in_run,
        "non_2xx_in_window": sum(1 for s in in_window if s[4] and not 200 <= s[4] < 300),
        "transport_errors": recorder.transport_errors,
        "errors": recorder.errors,
        "setup": {"seconds": round(setup_s, 3), "requests": len(setup_samples),
                  "latency": latency_summary([s[3] for s in setup_samples])},
        "cpu": cpu_report,
        "generator_gc": generator_gc,
        "profile": profile_report,
    }
    if cpu_report and posts:
        # CPU ms per command over the CPU window (which starts with the measured window)
        per = {g: round(1000 * v * cpu_report["seconds"] / len(posts) * (window_s / cpu_report["seconds"]), 3)
               for g, v in cpu_report["cores_busy_by_group"].items()}
        result["cpu_ms_per_command"] = per
        db = cpu_report.get("database_counters")
        if db:
            result["db_per_command"] = {k: round(v / len(posts), 2) for k, v in db.items()}
    return result


# --------------------------------------------------------------------------- CPU accounting


class CpuWatch:
    """CPU seconds over the measured window: this process, the server (with its threads), its children
    grouped by name (embedded PostgreSQL, NATS), the PostgreSQL cluster serving an external URL, and the
    whole machine (so 'other' shows anything else competing)."""

    def __init__(self, server_pid: int | None, database_url: str | None) -> None:
        self.server_pid = server_pid
        self.database_url = database_url
        self.postmaster_pid = None
        self.started = False
        self.notes: list[str] = []
        self.db_before: dict[str, int] | None = None
        if psutil is None:
            return
        if database_url:
            try:
                import psycopg

                with psycopg.connect(database_url, connect_timeout=5) as conn:
                    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
                parent = psutil.Process(backend).parent()
                if parent is not None and parent.name().startswith("postgres"):
                    self.postmaster_pid = parent.pid
            except Exception as exc:  # noqa: BLE001 (remote database or no access: no PostgreSQL CPU figure)
                self.notes.append(f"PostgreSQL processes not found: {type(exc).__name__}: {exc}")

    def _processes(self) -> dict[int, tuple[str, float, float]]:
        found: dict[int, tuple[str, float, float]] = {}  # pid: (group, user + system, system)

        def add(proc: Any, group: str) -> None:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                found[proc.pid] = (group, t.user + t.system, t.system)

        me = psutil.Process()
        add(me, "generator")
        if self.server_pid:
            with contextlib.suppress(psutil.Error):
                server = psutil.Process(self.server_pid)
                add(server, "server")
                # Its main thread runs the event loop (uvicorn, Litestar, asyncpg); the other threads run the
                # eventsourcing calls (anyio workers), the projection runner, LISTEN and pool workers.
                for thread in server.threads():
                    if thread.id == self.server_pid:
                        found[-1] = ("server: event-loop thread", thread.user_time + thread.system_time,
                                     thread.system_time)
                for child in server.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        name, cmdline = child.name(), child.cmdline()
                        if name.startswith("postgres"):
                            add(child, "postgres")
                        elif name.startswith("nats"):
                            add(child, "nats-server")
                        elif cmdline[-2:] == ["-m", "notifier"]:
                            add(child, "notifier")
                        elif cmdline[-2:] == ["-m", "scheduler.jobs"]:  # course index, relay, deadline watcher
                            add(child, "jobs")
                        else:  # uvicorn worker processes (KACT_WORKERS > 1)
                            add(child, "server workers")
        # An external NATS (the machine's): every nats-server the server did not start.
        for proc in psutil.process_iter(["name"]):
            if (proc.info["name"] or "").startswith("nats-server") and proc.pid not in found:
                add(proc, "nats-server")
        if self.postmaster_pid:
            with contextlib.suppress(psutil.Error):
                postmaster = psutil.Process(self.postmaster_pid)
                add(postmaster, "postgres")
                for child in postmaster.children():
                    add(child, "postgres")
        return found

    def _db_counters(self) -> dict[str, int] | None:
        """The database's transaction and row counters (pg_stat_database), to count work per command."""
        if not self.database_url:
            return None
        try:
            import psycopg

            with psycopg.connect(self.database_url, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched, tup_returned "
                    "FROM pg_stat_database WHERE datname = current_database()").fetchone()
        except Exception as exc:  # noqa: BLE001 (the figures are optional)
            self.notes.append(f"pg_stat_database not read: {type(exc).__name__}: {exc}")
            return None
        names = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_fetched", "tup_returned")
        return dict(zip(names, row, strict=True)) if row else None

    def start(self) -> None:
        self.db_before = self._db_counters()
        if psutil is None:
            return
        self.started = True
        self.t0 = time.perf_counter()
        self.before = self._processes()
        self.sys_before = psutil.cpu_times()

    def stop(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.t0
        after = self._processes()
        sys_after = psutil.cpu_times()
        db_after = self._db_counters()
        db = None
        if self.db_before and db_after:  # the whole database: other users of it count too
            db = {k: db_after[k] - self.db_before[k] for k in db_after}
        groups: dict[str, float] = defaultdict(float)
        kernel: dict[str, float] = defaultdict(float)
        for pid, (group, total, system) in after.items():
            previous = self.before.get(pid)
            groups[group] += total - (previous[1] if previous else 0.0)
            kernel[group] += system - (previous[2] if previous else 0.0)
        busy = (sum(sys_after) - sys_after.idle - getattr(sys_after, "iowait", 0.0)) - (
            sum(self.sys_before) - self.sys_before.idle - getattr(self.sys_before, "iowait", 0.0))
        cores_used = {g: round(v / elapsed, 3) for g, v in sorted(groups.items())}
        machine = round(busy / elapsed, 3)
        detail = {g: cores_used.pop(g) for g in list(cores_used) if g.startswith("server: ")}
        if detail and "server" in cores_used:
            detail["server: other threads"] = round(cores_used["server"] - sum(detail.values()), 3)
        return {
            "seconds": round(elapsed, 3),
            "cores": psutil.cpu_count(),
            "cores_busy_machine": machine,
            "cores_busy_by_group": cores_used,
            "kernel_share_by_group": {g: round(kernel[g] / v, 3) if v > 0 else None for g, v in sorted(groups.items())},
            "cores_busy_other": round(machine - sum(cores_used.values()), 3),
            "server_threads_cores_busy": detail,
            "database_counters": db,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- optional py-spy profile


def start_profiler(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.profile:
        return None
    if not args.server_pid:
        say("--profile needs the server pid (started here, or --server-pid): skipped")
        return None
    binary = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if binary is None:
        say("--profile: py-spy not found (pip install py-spy): skipped")
        return None
    out = Path(args.profile_output)
    duration = int(args.duration) if not args.courses else int(args.max_seconds)
    cmd = [binary, "record", "--pid", str(args.server_pid), "--duration", str(max(1, duration)),
           "--rate", str(args.profile_rate), "--format", "raw", "--output", str(out), "--subprocesses"]
    if args.profile == "wall":
        cmd.append("--idle")  # waiting threads too: where a request's time goes
    elif args.profile == "gil":
        cmd.append("--gil")  # only the thread holding the GIL: where the Python CPU goes
    log = out.with_suffix(".log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return {"proc": proc, "output": out, "log": log, "cmd": cmd}


def stop_profiler(profiler: dict[str, Any] | None) -> dict[str, Any] | None:
    if profiler is None:
        return None
    proc = profiler["proc"]
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    profiler["log"].close()
    return {"collapsed_stacks": str(profiler["output"]), "command": " ".join(profiler["cmd"]),
            "exit_code": proc.returncode}


# --------------------------------------------------------------------------- phase 2: save() in-process


def save_phase(database_url: str, count: int, threads: int, pool_size: int) -> dict[str, Any]:
    """Application.save() of new one-event courses, and execute() (load + command + save) of a screening,
    sequentially and from `threads` threads, in a scratch schema dropped afterwards."""
    import psycopg
    from eventsourcing.application import Application
    from eventsourcing.cryptography import AESCipher
    from psycopg import sql
    from scheduler.application.courses import Courses, event_store_env
    from scheduler.domain.course import Course
    from scheduler.domain.protocol import Protocol
    from scheduler.settings import Settings

    schema = f"bench_save_{secrets.token_hex(4)}"
    settings = Settings(database_url=database_url, db_schema=schema, cipher_key=AESCipher.create_key(32),
                        db_pool_size=pool_size)
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    app = Courses(env=event_store_env(settings))  # CREATE_TABLE=y: the event table is made here
    clinician = str(uuid4())

    def new_course() -> Course:
        return Course.open(course_id=uuid4(), home_clinic_id="bench-clinic", model="together", protocol=Protocol(),
                           partners={"a": "ref-a", "b": "ref-b"}, by="clinic:bench")

    def timed_save(_: int = 0) -> tuple[int, Any]:
        course = new_course()
        t = time.perf_counter_ns()
        Application.save(app, course)  # the library's own save, whatever Courses adds on top
        return time.perf_counter_ns() - t, course.id

    def timed_execute(course_id: Any) -> tuple[int, Any]:
        t = time.perf_counter_ns()
        app.execute(course_id, lambda c: c.record_screening(partner="a", result="eligible", clinician_id=clinician,
                                                             notes="screening note a", by="clinic:bench"))
        return time.perf_counter_ns() - t, course_id

    def run(label: str, fn: Callable[[Any], tuple[int, Any]], items: list[Any], workers: int) -> tuple[dict, list]:
        start, cpu_start = time.perf_counter(), time.process_time()
        if workers <= 1:
            outcomes = [fn(i) for i in items]
        else:
            with ThreadPoolExecutor(workers) as pool:
                outcomes = list(pool.map(fn, items))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        summary = {"count": len(items), "threads": workers, "wall_s": round(wall, 3),
                   "per_s": round(len(items) / wall, 1), "latency": latency_summary([o[0] for o in outcomes]),
                   "client_cpu_ms_per_call": round(1000 * cpu / len(items), 3)}
        say(f"  {label:<28} {summary['per_s']:>8.1f}/s  p50 {summary['latency']['p50_ms']:.2f} ms  "
            f"p99 {summary['latency']['p99_ms']:.2f} ms  CPU {summary['client_cpu_ms_per_call']:.2f} ms/call")
        return summary, [o[1] for o in outcomes]

    try:
        say(f"save() in-process: {count} per case, schema {schema}, pool {pool_size}+{pool_size} ...")
        for _ in range(min(50, count)):  # warm: pool connections, statements, table creation
            timed_save()
        results: dict[str, Any] = {"schema": schema, "pool_size": pool_size, "pool_max_overflow": pool_size}
        results["save_new_course_sequential"], seq_ids = run("save() sequential", timed_save, list(range(count)), 1)
        results[f"save_new_course_{threads}_threads"], thr_ids = run(
            f"save() {threads} threads", timed_save, list(range(count)), threads)
        results["execute_screening_sequential"], _ = run("execute() sequential", timed_execute, seq_ids, 1)
        results[f"execute_screening_{threads}_threads"], _ = run(
            f"execute() {threads} threads", timed_execute, thr_ids, threads)
        results["note"] = ("save: Course.open() then eventsourcing's Application.save() (one encrypted event, one "
                           "INSERT transaction); execute: Courses.execute() = load (cache + fast-forward query) + "
                           "record_screening + save as the application does it, i.e. the event-store part of one "
                           "API command")
        return results
    finally:
        app.close()
        drop_schema(database_url, schema)


def drop_schema(database_url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    if not re.fullmatch(r"bench_[a-z_]*[0-9a-f]{8}", schema):  # only ever drop a schema this script named
        raise ValueError(f"refusing to drop {schema!r}")
    with contextlib.suppress(Exception), psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# --------------------------------------------------------------------------- the server under test


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base_url: str
    operator_key: str
    data_dir: Path
    log_path: Path
    database_url: str | None  # for the save() phase and CPU accounting
    schema: str | None  # the random schema to drop (external PostgreSQL only)
    embedded: bool
    nats_url: str | None = None  # external NATS only
    nats_stream: str | None = None


def kact_command() -> list[str]:
    script = Path(sys.executable).parent / "kact"
    if script.exists():
        return [str(script), "up"]
    return [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main(sys.argv[1:]))", "up"]


# Each synthetic clinic of this benchmark sends about 30 commands/s, beyond a real clinic's default limit (20/s):
# the limiter stays in the path (its cost is measured) with room to spare, unless --server-env says otherwise.
LOAD_SERVER_ENV = {"KACT_RATE_LIMIT": "1000", "KACT_RATE_BURST": "2000"}


@contextlib.contextmanager
def started_server(args: argparse.Namespace, log_path: Path, defaults: dict[str, str] | None = None) -> Iterator[Server]:
    data_dir = Path(tempfile.mkdtemp(prefix="kact-bench-"))
    operator_key = secrets.token_urlsafe(32)
    env = dict(os.environ)
    env.update({
        "KACT_SIMULATED_TIME": "1",
        "KACT_HTTP_HOST": "127.0.0.1",
        "KACT_HTTP_PORT": str(free_port()),
        "KACT_DATA_DIR": str(data_dir),
        "KACT_OPERATOR_TOKEN": operator_key,
    })
    for name, value in (defaults or {}).items():
        env.setdefault(name, value)
    external_db = env.get("KACT_DATABASE_URL") or None
    schema = None
    if external_db:
        token = secrets.token_hex(4)
        schema = f"bench_{token}"
        env["KACT_DB_SCHEMA"] = schema
        env.setdefault("KACT_NATS_URL", "nats://127.0.0.1:4222")
        # A NATS server shared with other runs: a stream and subjects of this run's own, removed at the end.
        env["KACT_NATS_STREAM"], env["KACT_NATS_PREFIX"] = f"BENCH_{token}", f"bench{token}"
    for item in args.server_env:
        name, _, value = item.partition("=")
        env[name] = value
    port = int(env["KACT_HTTP_PORT"])
    say(f"starting kact up (data dir {data_dir}, "
        f"{'PostgreSQL ' + redact(external_db) + ' schema ' + str(schema) if external_db else 'embedded PostgreSQL'}"
        f"; log {log_path}) ...")
    log = log_path.open("wb")
    proc = subprocess.Popen(kact_command(), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # Ctrl-C here reaches us; we stop the server in order
    server = None
    try:
        announcement = wait_until_up(proc, log_path, args.startup_timeout)
        base_url = announcement.get("API", f"http://127.0.0.1:{port}")
        database_url = external_db or embedded_database_url(announcement.get("PostgreSQL", ""), data_dir)
        server = Server(proc, base_url, operator_key, data_dir, log_path, database_url, schema, not external_db,
                        env.get("KACT_NATS_URL"), env.get("KACT_NATS_STREAM"))
        wait_until_ready(base_url, proc, args.startup_timeout)
        yield server
    finally:
        stop_server(proc, data_dir)
        log.close()
        if external_db and schema and not args.keep_schema:
            drop_schema(external_db, schema)
            asyncio.run(delete_stream(env["KACT_NATS_URL"], env["KACT_NATS_STREAM"]))
        shutil.rmtree(data_dir, ignore_errors=True)


def background_backlog(database_url: str, schema: str, nats_url: str, stream: str, limit_s: float = 180.0
                       ) -> dict[str, Any]:
    """How far the background work is behind the commands when the load stops (events not yet relayed to
    JetStream, relayed but not yet processed by the notifier), and how long it
    takes to catch up. A system that keeps its latency by falling behind shows it here."""
    import nats
    import psycopg
    from psycopg import sql

    async def stream_messages() -> int:
        nc = await nats.connect(nats_url)
        try:
            return (await nc.jetstream().stream_info(stream)).state.messages
        finally:
            await nc.close()

    def read() -> dict[str, int]:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

            def value(query: str) -> int:
                return conn.execute(query).fetchone()[0] or 0  # type: ignore[index]

            counts = {
                "stored": value("SELECT max(notification_id) FROM courses_events"),
                "relayed": value("SELECT max(notification_id) FROM relay_tracking"),
                "processed": value("SELECT count(*) FROM notifier_inbox"),
            }
        return {**counts, "published": asyncio.run(stream_messages())}

    def behind(c: dict[str, int]) -> dict[str, int]:
        return {"not_relayed": c["stored"] - c["relayed"],
                "not_processed_by_notifier": c["published"] - c["processed"]}

    started = time.monotonic()
    try:
        first = now = read()
        while any(behind(now).values()) and time.monotonic() - started < limit_s:
            time.sleep(0.1)
            now = read()
    except Exception as exc:  # noqa: BLE001 (the HTTP figures are still worth keeping)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"at_load_end": behind(first), "caught_up": not any(behind(now).values()),
            "seconds_to_catch_up": round(time.monotonic() - started, 2), "events_stored": now["stored"]}


async def delete_stream(url: str, name: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(name)
    except Exception as exc:  # noqa: BLE001 - cleanup only
        say(f"could not delete stream {name}: {exc}")
    finally:
        await nc.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redact(url: str | None) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url or "")


def wait_until_up(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> dict[str, str]:
    """Wait for the 'kact is up' announcement and return its lines (API, PostgreSQL, ...) by name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text("utf-8", "replace")
        if "kact is up" in text:
            lines = text.split("kact is up", 1)[1].splitlines()
            found = {}
            for line in lines[1:]:
                if not line.startswith("  "):
                    break
                name, _, value = line.strip().partition("  ")
                found[name.strip()] = value.strip()
            return found
        if proc.poll() is not None:
            raise SystemExit(f"kact up exited with {proc.returncode}:\n{text[-4000:]}")
        time.sleep(0.1)
    raise SystemExit(f"kact up did not announce itself within {timeout:g} s; see {log_path}")


def embedded_database_url(line: str, data_dir: Path) -> str | None:
    """The embedded cluster's URL: `kact up` prints it with the password redacted; the password is in
    <data dir>/postgres.password (0600) and the port also in <data dir>/pg/postmaster.pid (line 4)."""
    password_file = data_dir / "postgres.password"
    if not password_file.exists():
        return None
    password = quote(password_file.read_text("utf-8").strip(), safe="")
    match = re.search(r"postgresql://([^:@/]+):\*\*\*@([^/,\s]+)/([^,\s]+)", line)
    if match:
        user, hostport, db = match.groups()
        return f"postgresql://{user}:{password}@{hostport}/{db}"
    pid_file = data_dir / "pg" / "postmaster.pid"
    if pid_file.exists():
        port = pid_file.read_text().splitlines()[3].strip()
        return f"postgresql://kact:{password}@127.0.0.1:{port}/kact"
    return None


def wait_until_ready(base_url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(f"{base_url}/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"kact up exited with {proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise SystemExit(f"{base_url}/health/ready did not answer 200 within {timeout:g} s")
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen[bytes], data_dir: Path) -> None:
    if proc.poll() is None:
        say("stopping kact up (SIGINT) ...")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            say("kact up did not stop within 60 s: SIGKILL")
            proc.kill()
            proc.wait()
            stop_embedded_leftovers(data_dir)


def stop_embedded_leftovers(data_dir: Path) -> None:
    """After a SIGKILL the embedded servers of *our* data dir survive: stop them by their pid files."""
    for pid_file in (data_dir / "pg" / "postmaster.pid", data_dir / "nats.pid"):
        with contextlib.suppress(Exception):
            pid = int(pid_file.read_text().split()[0])
            if psutil is not None and str(data_dir) not in " ".join(psutil.Process(pid).cmdline()):
                continue
            os.kill(pid, signal.SIGINT)


# --------------------------------------------------------------------------- report


def print_table(result: dict[str, Any]) -> None:
    out = []
    http = result.get("http")
    if http:
        c = http["commands"]
        lat = c["latency"]
        load = f"paced at {result['config']['rate']:g}/s" if result["config"].get("rate") else "closed loop"
        out.append(f"HTTP  {result['config']['clients']} clients, {load}, window {http['window_s']:.1f} s, "
                   f"client={result['config']['client']}, server={result['server']['mode']}")
        out.append(f"  {'':<26} {'count':>7} {'/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")

        def row(name: str, count: int, rate: float, l: dict[str, Any]) -> None:
            if not count:
                out.append(f"  {name:<26} {0:>7}")
                return
            out.append(f"  {name:<26} {count:>7} {rate:>8.1f} {l['p50_ms']:>8.1f} {l['p95_ms']:>8.1f} "
                       f"{l['p99_ms']:>8.1f} {l['max_ms']:>8.1f}")

        row("commands (all POSTs)", c["count"], c["per_s"], lat)
        for kind, s in c["by_kind"].items():
            row(f"  {kind}", s["count"], s["per_s"], s)
        if http["gets"]["count"]:
            row("GETs", http["gets"]["count"], http["gets"]["per_s"], http["gets"]["latency"])
        co = http["courses"]
        out.append(f"  courses completed in window: {co['completed_in_window']} ({co['per_s']:.2f}/s), "
                   f"abandoned on error: {co['abandoned_on_error']}")
        out.append(f"  non-2xx: {http['non_2xx']}   transport errors: {http['transport_errors']}")
        if http.get("generator_gc"):
            g = http["generator_gc"]
            out.append(f"  generator's own garbage collections: {g['collections']}, {g['total_ms']} ms in all, "
                       f"longest {g['max_ms']} ms")
        if http.get("backlog"):
            b = http["backlog"]
            out.append(f"  background work behind at load end: {json.dumps(b.get('at_load_end') or b)}; caught up "
                       f"{'in ' + str(b['seconds_to_catch_up']) + ' s' if b.get('caught_up') else 'NOT'}")
        if http.get("cpu"):
            cpu = http["cpu"]
            groups = ", ".join(f"{k} {v:.2f}" for k, v in cpu["cores_busy_by_group"].items())
            out.append(f"  CPU (cores busy of {cpu['cores']}): machine {cpu['cores_busy_machine']:.2f}; {groups}; "
                       f"other {cpu['cores_busy_other']:.2f}")
            if cpu.get("server_threads_cores_busy"):
                out.append("  server threads (cores busy): " + ", ".join(
                    f"{k.removeprefix('server: ')} {v:.2f}" for k, v in cpu["server_threads_cores_busy"].items()))
            if http.get("cpu_ms_per_command"):
                out.append("  CPU ms per command: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in http["cpu_ms_per_command"].items()))
            if http.get("db_per_command"):
                d = http["db_per_command"]
                out.append(f"  PostgreSQL per command: {d['xact_commit']:.1f} commits, {d['xact_rollback']:.1f} "
                           f"rollbacks, {d['tup_inserted']:.1f} rows inserted, {d['tup_updated']:.1f} updated")
        floor = result["floor"]
        out.append(f"  floor {FLOOR_COMMANDS_PER_S:g} commands/s with p99 < {FLOOR_P99_MS:g} ms: "
                   f"{'MET' if floor['met'] else 'NOT MET'}")
        for e in http["errors"][:5]:
            out.append(f"  error: {json.dumps(e)[:400]}")
    save = result.get("save")
    if save and "error" not in save and "skipped" not in save:
        out.append(f"save() in-process (pool {save['pool_size']}+{save['pool_max_overflow']})")
        out.append(f"  {'':<34} {'count':>7} {'/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
                   f"{'CPU ms':>7}")
        for name, s in save.items():
            if isinstance(s, dict) and "latency" in s:
                l = s["latency"]
                out.append(f"  {name:<34} {s['count']:>7} {s['per_s']:>8.1f} {l['p50_ms']:>8.2f} {l['p95_ms']:>8.2f} "
                           f"{l['p99_ms']:>8.2f} {l['max_ms']:>8.2f} {s['client_cpu_ms_per_call']:>7.2f}")
    elif save:
        out.append(f"save() in-process: {save.get('skipped') or save.get('error')}")
    print("\n".join(out))


def code_version() -> dict[str, Any]:
    """The commit the server runs, and the files changed on top of it (the server runs the work tree)."""
    root = BENCH_DIR.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head, "modified": [line[3:] for line in dirty if line.strip()]}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("kact", "eventsourcing", "litestar", "uvicorn", "uvloop", "httptools", "psycopg", "psycopg-binary",
                 "psycopg-c", "asyncpg", "msgspec", "httpx"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    with contextlib.suppress(Exception):
        import psycopg

        found["psycopg implementation"] = psycopg.pq.__impl__  # python (ctypes), binary or c
    return found


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32, help="concurrent clients, each its own clinic (default 32)")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds after the warm-up (default 30)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds excluded from the figures (default 5)")
    p.add_argument("--courses", type=int, default=0,
                   help="instead of a duration: start this many courses in all, then stop (bounded by --max-seconds)")
    p.add_argument("--max-seconds", type=float, default=600.0, help="hard bound of a --courses run (default 600)")
    p.add_argument("--rate", type=float, default=0.0, metavar="COMMANDS_PER_S",
                   help="open loop: the clients together send this many commands per second, each on a fixed "
                        "schedule, latency counted from the scheduled moment (default 0: closed loop, each "
                        "client sends its next command as soon as the last one is answered)")
    p.add_argument("--integrations", type=int, default=4, help="integration sessions per course (default 4)")
    p.add_argument("--read-back", action="store_true", help="GET each course after completing it (reported apart)")
    p.add_argument("--client", choices=("raw", "httpx"), default="raw",
                   help="raw: pre-built HTTP/1.1 over asyncio streams (cheap, default); httpx: httpx.AsyncClient")
    p.add_argument("--request-timeout", type=float, default=30.0, help="per-request timeout in seconds (default 30)")
    p.add_argument("--base-url", help="target an already-running server (started with KACT_SIMULATED_TIME=1)")
    p.add_argument("--operator-key", help="its operator key (needed with --base-url)")
    p.add_argument("--database-url", help="with --base-url: the server's PostgreSQL, for the save() phase "
                                          "(and CPU accounting); default KACT_DATABASE_URL")
    p.add_argument("--server-pid", type=int, help="with --base-url: the server's pid, for CPU accounting/--profile")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the started server, e.g. KACT_DB_POOL_SIZE=20 (repeatable)")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--keep-schema", action="store_true", help="keep the random schema of the started server")
    p.add_argument("--save-count", type=int, default=2000, help="save()/execute() calls per case (default 2000)")
    p.add_argument("--save-threads", type=int, default=32)
    p.add_argument("--no-save", action="store_true", help="skip the in-process save() phase")
    p.add_argument("--no-http", action="store_true", help="skip the HTTP phase (save() only)")
    p.add_argument("--profile", choices=("cpu", "gil", "wall"),
                   help="py-spy record the server during the measured window (collapsed stacks next to the JSON; "
                        "summarise with bench/pyspy_summary.py): cpu = running threads, gil = the GIL holder only, "
                        "wall = every thread, waiting ones too")
    p.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second (default 50)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to this long for the machine to be idle (< 25%% busy over 3 s), since other "
                        "work on a 2-core machine distorts the figures; the run proceeds anyway afterwards")
    p.add_argument("--no-uvloop", action="store_true", help="run the generator on the default asyncio loop")
    p.add_argument("--samples-out", type=Path, metavar="CSV",
                   help="also write every measured request (end time, latency, kind, status) to this CSV")
    p.add_argument("--output", type=Path, help="JSON result path (default bench/results/<timestamp>.json)")
    args = p.parse_args(argv)
    if args.base_url and not args.operator_key:
        p.error("--base-url needs --operator-key")
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0 or args.courses < 0 or args.rate < 0:
        p.error("--clients >= 1, --duration > 0, --warmup >= 0, --courses >= 0, --rate >= 0")
    if not 1 <= args.integrations <= 8:
        p.error("--integrations must be in 1..8 (the protocol's bounds)")
    return args


def wait_quiet(limit_s: float) -> dict[str, Any] | None:
    if limit_s <= 0 or psutil is None:
        return None
    deadline = time.monotonic() + limit_s
    waited = time.monotonic()
    while True:
        busy = psutil.cpu_percent(interval=3.0)
        if busy < 25.0:
            return {"waited_s": round(time.monotonic() - waited, 1), "busy_percent": busy}
        if time.monotonic() > deadline:
            say(f"the machine is still {busy:.0f}% busy after {limit_s:g} s: running anyway")
            return {"waited_s": round(time.monotonic() - waited, 1), "busy_percent": busy, "gave_up": True}
        say(f"waiting for a quiet machine ({busy:.0f}% busy) ...")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or RESULTS_DIR / f"{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    args.profile_output = str(output.with_suffix(".pyspy.txt"))
    result: dict[str, Any] = {
        "started_at": stamp,
        "code": code_version(),
        "config": {k: v for k, v in vars(args).items() if k not in ("operator_key", "output", "profile_output")},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "versions": versions()},
    }
    result["config"]["database_url"] = redact(args.database_url)
    result["machine"]["quiet_wait"] = wait_quiet(args.wait_quiet)

    with contextlib.ExitStack() as stack:
        if args.base_url:
            base_url, operator_key = args.base_url.rstrip("/"), args.operator_key
            database_url = args.database_url or os.environ.get("KACT_DATABASE_URL")
            wait_until_ready(base_url, None, args.startup_timeout)
            result["server"] = {"mode": "external", "base_url": base_url, "database_url": redact(database_url)}
        else:
            server = stack.enter_context(started_server(args, output.with_suffix(".server.log"), LOAD_SERVER_ENV))
            base_url, operator_key, database_url = server.base_url, server.operator_key, server.database_url
            args.server_pid = server.proc.pid
            result["server"] = {
                "mode": "embedded" if server.embedded else "started, external PostgreSQL",
                "base_url": base_url, "pid": server.proc.pid, "database_url": redact(database_url),
                "schema": server.schema or "kact", "log": str(server.log_path), "server_env": args.server_env,
            }
        args.cpu_database_url = database_url

        if not args.no_http:
            if not args.no_uvloop:
                with contextlib.suppress(ImportError):
                    import uvloop

                    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            http = asyncio.run(http_phase(args, base_url, operator_key))
            result["http"] = http
            if not args.base_url and server.schema and server.nats_url and server.nats_stream:
                say("waiting for the relay, the course index and the notifier to catch up ...")
                http["backlog"] = background_backlog(database_url, server.schema, server.nats_url,
                                                     server.nats_stream)
            c = http["commands"]
            # Closed loop: the rate reached counts. Paced: the rate offered, if the server kept up with it
            # (99% of it answered inside the window; the window's edges cut the rest).
            rate_ok = (args.rate >= FLOOR_COMMANDS_PER_S and c["per_s"] >= 0.99 * args.rate) if args.rate \
                else c["per_s"] >= FLOOR_COMMANDS_PER_S
            result["floor"] = {
                "commands_per_s": FLOOR_COMMANDS_PER_S, "p99_ms": FLOOR_P99_MS,
                "met": bool(c["count"]) and rate_ok
                and (c["latency"].get("p99_ms") or 1e9) < FLOOR_P99_MS
                and http["non_2xx"] == 0 and http["transport_errors"] == 0,
            }
            write(output, result)

        if args.no_save:
            result["save"] = {"skipped": "--no-save"}
        elif not database_url:
            result["save"] = {"skipped": "no database URL (give --database-url or KACT_DATABASE_URL)"}
        else:
            pool = int(dict(e.partition("=")[::2] for e in args.server_env).get(
                "KACT_DB_POOL_SIZE", os.environ.get("KACT_DB_POOL_SIZE", "10")))
            try:
                result["save"] = save_phase(database_url, args.save_count, args.save_threads, pool)
            except Exception as exc:  # noqa: BLE001 (the HTTP figures are still worth keeping)
                result["save"] = {"error": f"{type(exc).__name__}: {exc}"}
    write(output, result)
    print_table(result)
    print(f"results: {output}")
    http = result.get("http")
    return 1 if http and (http["non_2xx"] or http["transport_errors"]) else 0


def write(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
