"""What-if patches for profiling the server, NOT fixes: loaded only when this folder is on PYTHONPATH.

    python bench/http_load.py --server-env PYTHONPATH=bench/experiments \\
        --server-env KACT_BENCH_PATCHES=asyncpg_no_reset

Each patch imitates a change suggested in the benchmark report, so its effect can be measured before
anyone edits services/:

- switch_interval: the interpreter hands the GIL over every $KACT_BENCH_SWITCH_INTERVAL seconds (default
  0.0005) instead of every 5 ms, i.e. `sys.setswitchinterval(...)` at start.
- asyncpg_no_reset: asyncpg pools skip the per-release reset query (`SELECT pg_advisory_unlock_all();
  CLOSE ALL; UNLISTEN *; RESET ALL`), i.e. `asyncpg.create_pool(..., reset=<no-op>)`.
(Two earlier patches, a fast projection wait and the locked insert function, became real changes:
`scheduler/event_store.py` and the scheduler no longer waiting on its index.)

And one that only measures:

- yappi_cpu: profile CPU time of every thread with yappi (needs yappi importable, e.g. `pip install
  --target DIR yappi` and DIR on PYTHONPATH too); at exit, writes per-function stats to
  $KACT_BENCH_YAPPI_OUT (default /tmp/kact-yappi.txt). Slows the server down: use it for shares, not rates.
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


def _yappi_cpu() -> None:
    import atexit

    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)

    def dump() -> None:
        yappi.stop()
        out = os.environ.get("KACT_BENCH_YAPPI_OUT", "/tmp/kact-yappi.txt")
        stats = yappi.get_func_stats()
        with open(out, "w", encoding="utf-8") as f:
            f.write("# name\tmodule:line\tncall\ttsub_s\tttot_s\n")
            f.writelines(f"{s.name}\t{s.module}:{s.lineno}\t{s.ncall}\t{s.tsub:.6f}\t{s.ttot:.6f}\n" for s in stats)
        with open(out + ".threads", "w", encoding="utf-8") as f:
            f.writelines(f"{t.name}\t{t.id}\t{t.ttot:.6f}\t{t.sched_count}\n" for t in yappi.get_thread_stats())

    atexit.register(dump)


# The started server's helper processes (python -m notifier, python -m scheduler.jobs) inherit this folder on
# PYTHONPATH: patch the API process only.
HELPER = "-m" in sys.orig_argv

for name in sorted(PATCHES) if not HELPER else ():
    patch = {"asyncpg_no_reset": _asyncpg_no_reset, "switch_interval": _switch_interval,
             "yappi_cpu": _yappi_cpu}.get(name)
    if patch is None:
        print(f"bench sitecustomize: unknown patch {name!r}", file=sys.stderr)
        continue
    patch()
    print(f"bench sitecustomize: applied {name}", file=sys.stderr)
