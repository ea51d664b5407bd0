"""What-if patches for profiling the server, NOT fixes: loaded only when this folder is on PYTHONPATH.

    python bench/http_load.py --server-env PYTHONPATH=bench/experiments \\
        --server-env KACT_BENCH_PATCHES=asyncpg_no_reset

Each patch imitates a change suggested in the benchmark report, so its effect can be measured before
anyone edits services/:

- switch_interval: the interpreter hands the GIL over every $KACT_BENCH_SWITCH_INTERVAL seconds (default
  0.0005) instead of every 5 ms, i.e. `sys.setswitchinterval(...)` at start.
- thread_limit: at most $KACT_BENCH_THREADS (default 8) eventsourcing calls run at once in worker threads
  (anyio's default limiter allows 40), i.e. `current_default_thread_limiter().total_tokens = N`.
- timings: records how long each part of a command takes (the thread hand-off, `Courses.execute`, the wait
  for the group commit, each batch's save and size, the event loop's lag) and writes percentiles to
  $KACT_BENCH_TIMINGS_OUT (default /tmp/kact-timings.json) at exit.
- asyncpg_no_reset: asyncpg pools skip the per-release reset query (`SELECT pg_advisory_unlock_all();
  CLOSE ALL; UNLISTEN *; RESET ALL`), i.e. `asyncpg.create_pool(..., reset=<no-op>)`.
(Two earlier patches, a fast projection wait and the locked insert function, became real changes:
`scheduler/event_store.py` and the scheduler no longer waiting on its index.)

- settle_pulls: a LISTEN/NOTIFY subscription waits $KACT_BENCH_SETTLE_SECONDS (default 0.02) after each
  notification before it pulls, so the events of several commits come in one pull.
- no_calendars: sessions hold no calendar (what I10 across courses costs; the cross-course rule is NOT kept).
- no_course_index: the course index processes no event (measures what keeping it costs; apply it to
  scheduler.jobs).
- gc_pauses: records each garbage collection's pause per generation and writes count, total, p50, p99 and
  max to $KACT_BENCH_GC_OUT (default /tmp/kact-gc.json) at exit.

And one that only measures:

- yappi_cpu: profile CPU time of every thread with yappi (needs yappi importable, e.g. `pip install
  --target DIR yappi` and DIR on PYTHONPATH too); at exit, writes per-function stats to
  $KACT_BENCH_YAPPI_OUT (default /tmp/kact-yappi.txt). Slows the server down: use it for shares, not rates.
  With KACT_BENCH_YAPPI_ALL=1 every process `kact up` starts writes $KACT_BENCH_YAPPI_OUT.<pid> (and .argv).
"""

from __future__ import annotations

import os
import sys

PATCHES = {p.strip() for p in os.environ.get("KACT_BENCH_PATCHES", "").split(",") if p.strip()}


def _asyncpg_no_reset() -> None:
    import asyncpg

    original = asyncpg.create_pool

    async def _keep(conn: object) -> None:  # the pool still rolls back an open transaction itself
        return None

    def create_pool(*args: object, **kwargs: object) -> object:
        kwargs.setdefault("reset", _keep)
        return original(*args, **kwargs)

    asyncpg.create_pool = create_pool  # type: ignore[assignment]


def _switch_interval() -> None:
    sys.setswitchinterval(float(os.environ.get("KACT_BENCH_SWITCH_INTERVAL", "0.0005")))


def _thread_limit() -> None:
    import anyio.to_thread

    original = anyio.to_thread.run_sync
    tokens = int(os.environ.get("KACT_BENCH_THREADS", "8"))

    async def run_sync(*args: object, **kwargs: object) -> object:
        limiter = anyio.to_thread.current_default_thread_limiter()
        if limiter.total_tokens != tokens:
            limiter.total_tokens = tokens
        return await original(*args, **kwargs)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]


def _timings() -> None:
    import asyncio
    import atexit
    import json
    import time
    from collections import defaultdict

    samples: dict[str, list[float]] = defaultdict(list)
    slow: list[tuple[str, float, float, int]] = []  # (what, started at (perf_counter), seconds, batch size)

    def timed(owner: object, name: str, key: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                samples[key].append(time.perf_counter() - start)

        setattr(owner, name, wrapper)

    def patch_scheduler() -> None:
        from scheduler.application import courses as application, group_commit

        timed(application.Courses, "_decide", "decide_in_thread")
        original_save = group_commit.GroupCommit._save

        def batch(self: object, items: list[object]) -> None:
            start = time.perf_counter()
            original_save(self, items)
            samples["batch_save"].append(time.perf_counter() - start)
            samples["batch_size"].append(len(items))
            if time.perf_counter() - start > 0.02:
                slow.append(("batch_save", start, time.perf_counter() - start, len(items)))

        group_commit.GroupCommit._save = batch
        from scheduler.application import handlers

        lag_started = {"yes": False}
        original_run = handlers.Scheduling._run

        async def run(self: object, steps: object) -> object:  # one command: decide, commit, answer
            if not lag_started["yes"]:
                lag_started["yes"] = True
                asyncio.get_running_loop().create_task(lag())
            start = time.perf_counter()
            try:
                return await original_run(self, steps)
            finally:
                samples["scheduling_run"].append(time.perf_counter() - start)

        handlers.Scheduling._run = run

        async def lag() -> None:
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                samples["event_loop_lag"].append(time.perf_counter() - before - 0.01)
                if time.perf_counter() - before - 0.01 > 0.02:
                    slow.append(("event_loop_lag", before, time.perf_counter() - before - 0.01, 0))

    import builtins

    original_import = builtins.__import__
    done = {"patched": False}

    def importer(name: str, *args: object, **kwargs: object) -> object:
        module = original_import(name, *args, **kwargs)
        if not done["patched"] and name == "scheduler.bootstrap":
            done["patched"] = True
            patch_scheduler()
        return module

    builtins.__import__ = importer

    def dump() -> None:
        out = {}
        for key, values in samples.items():
            values = sorted(values)
            if not values:
                continue
            scale = 1 if key == "batch_size" else 1000

            def q(f: float) -> float:
                return round(values[min(len(values) - 1, int(f * len(values)))] * scale, 2)

            out[key] = {"n": len(values), "mean": round(sum(values) / len(values) * scale, 2),
                        "p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "max": round(values[-1] * scale, 2)}
        out["slow_moments"] = [{"what": w, "at": round(a, 4), "ms": round(d * 1000, 1), "size": n} for w, a, d, n in slow]
        with open(os.environ.get("KACT_BENCH_TIMINGS_OUT", "/tmp/kact-timings.json"), "w") as f:
            json.dump(out, f, indent=1)

    atexit.register(dump)


def _yappi_cpu() -> None:
    import atexit

    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)

    def dump() -> None:
        yappi.stop()
        out = os.environ.get("KACT_BENCH_YAPPI_OUT", "/tmp/kact-yappi.txt")
        if os.environ.get("KACT_BENCH_YAPPI_ALL"):  # every process of `kact up`, each to a file of its own
            out = f"{out}.{os.getpid()}"
            with open(out + ".argv", "w", encoding="utf-8") as f:
                f.write(" ".join(sys.argv) + "\n")
        stats = yappi.get_func_stats()
        with open(out, "w", encoding="utf-8") as f:
            f.write("# name\tmodule:line\tncall\ttsub_s\tttot_s\n")
            f.writelines(f"{s.name}\t{s.module}:{s.lineno}\t{s.ncall}\t{s.tsub:.6f}\t{s.ttot:.6f}\n" for s in stats)
        with open(out + ".threads", "w", encoding="utf-8") as f:
            f.writelines(f"{t.name}\t{t.id}\t{t.ttot:.6f}\t{t.sched_count}\n" for t in yappi.get_thread_stats())

    atexit.register(dump)


def _settle_pulls() -> None:
    import time

    from eventsourcing.persistence import ListenNotifySubscription

    settle = float(os.environ.get("KACT_BENCH_SETTLE_SECONDS", "0.02"))

    def _loop_on_pull(self: ListenNotifySubscription) -> None:  # type: ignore[type-arg]
        try:
            self._pull()
            while not self._has_been_stopped:
                self._has_been_notified.wait()
                time.sleep(settle)
                self._pull()
        except BaseException as e:
            if self._thread_error is None:
                self._thread_error = e
            self.stop()

    ListenNotifySubscription._loop_on_pull = _loop_on_pull  # type: ignore[method-assign]


def _no_course_index() -> None:
    from scheduler.readmodels import indexer

    indexer.INDEXED_TOPICS = ("kact.bench:nothing",)  # the indexer's subscription selects no event at all


def _gc_pauses() -> None:
    import atexit
    import gc
    import json
    import time

    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(callback)

    def dump() -> None:
        out = os.environ.get("KACT_BENCH_GC_OUT", "/tmp/kact-gc.json")
        report = {}
        for gen, ms in pauses.items():
            ms.sort()
            report[gen] = {"count": len(ms), "total_ms": round(sum(ms), 1),
                           "p50_ms": round(ms[len(ms) // 2], 3) if ms else None,
                           "p99_ms": round(ms[int(len(ms) * 0.99)], 3) if ms else None,
                           "max_ms": round(ms[-1], 3) if ms else None}
        report["objects_tracked_at_exit"] = len(gc.get_objects())
        with open(out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)

    atexit.register(dump)


# The started server's helper processes (python -m notifier, python -m scheduler.jobs) inherit this folder on
# PYTHONPATH: patch the API process only, or only the helper named by $KACT_BENCH_PATCH_MODULE.
MODULE = os.environ.get("KACT_BENCH_PATCH_MODULE")
HELPER = (sys.orig_argv[-2:] != ["-m", MODULE]) if MODULE else ("-m" in sys.orig_argv)


def _no_calendars() -> None:
    """What the calendars cost: sessions hold no calendar (I10 across courses is NOT checked)."""
    from scheduler.application import calendars

    calendars.CalendarIds.held_by = lambda self, course, session: iter(())  # type: ignore[method-assign]


for name in sorted(PATCHES) if not HELPER else ():
    patch = {"asyncpg_no_reset": _asyncpg_no_reset, "switch_interval": _switch_interval,
             "thread_limit": _thread_limit,
             "timings": _timings, "gc_pauses": _gc_pauses,
             "settle_pulls": _settle_pulls, "no_course_index": _no_course_index,
             "yappi_cpu": _yappi_cpu, "no_calendars": _no_calendars}.get(name)
    if patch is None:
        print(f"bench sitecustomize: unknown patch {name!r}", file=sys.stderr)
        continue
    patch()
    print(f"bench sitecustomize: applied {name}", file=sys.stderr)

