"""Noisy neighbour: does one clinic flooding the API raise another clinic's latency?

Starts `kact up` as `http_load.py` does (or takes --base-url/--operator-key), onboards two clinics, then:

1. clinic B alone: complete courses (http_load's workload, one client) paced at --b-rate commands/s for
   --duration s, latency counted from each command's scheduled moment (no coordinated omission);
2. the same again while clinic A floods from another process: --flood-connections keep-alive connections,
   each sending `POST /v1/courses` as soon as the last answer came (A's rate limit holds or refuses most);
repeated --rounds times (a noisy moment on a shared machine then weighs on both phases), samples pooled.

Reports B's p50/p99 in both phases, A's answers (accepted, 429, other) and whether B's p99 under the flood
stayed within --max-ratio (default 1.5) of its p99 alone. Exit code 1 if not.

    KACT_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python bench/noisy_neighbour.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_load import (  # noqa: E402 - the benchmark's own helpers, next to this file
    RESULTS_DIR,
    CourseClient,
    CourseFailed,
    HttpError,
    Recorder,
    Transport,
    latency_summary,
    say,
    started_server,
    wait_quiet,
)

OPEN_COURSE = msgspec.json.encode({"model": "together", "partners": {"a": "flood-a", "b": "flood-b"}})


# --------------------------------------------------------------------------- clinic A: the flood (own process)


async def _flood(base_url: str, key: str, connections: int, seconds: float) -> dict[str, int]:
    transport = Transport("raw", base_url, connections, 30.0)
    counts = {"accepted": 0, "limited": 0, "other": 0, "transport_errors": 0}
    stop_at = time.monotonic() + seconds

    async def one() -> None:
        conn = transport.connection()
        try:
            while time.monotonic() < stop_at:
                try:
                    status, _ = await transport.send(conn, "POST", "/v1/courses", key, OPEN_COURSE, None)
                except HttpError:
                    counts["transport_errors"] += 1
                    await asyncio.sleep(0.1)  # a server that went away is not spun against
                    continue
                bucket = "accepted" if status < 300 else "limited" if status == 429 else "other"
                counts[bucket] += 1
        finally:
            if conn is not None:
                conn.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return counts


def flood_process(base_url: str, key: str, connections: int, seconds: float, out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_flood(base_url, key, connections, seconds)))


# --------------------------------------------------------------------------- clinic B: the well-behaved one


async def paced_b(client: CourseClient, rate: float, warmup: float, seconds: float) -> tuple[list[int], int]:
    """B's courses paced at `rate` commands/s: the latencies (ns) of the commands ending in the window, and
    how many failed."""
    recorder = client.recorder
    recorder.samples.clear()
    started = time.perf_counter_ns()
    window_from, window_until = started + int(warmup * 1e9), started + int((warmup + seconds) * 1e9)
    client.pace_ns, client.next_send_ns, client.deadline_ns = int(1e9 / rate), started, window_until
    before = recorder.non_2xx + recorder.transport_errors
    await client.run(lambda: time.perf_counter_ns() < window_until, read_back=False)
    latencies = [s[3] for s in recorder.samples if window_from <= s[2] <= window_until]
    return latencies, recorder.non_2xx + recorder.transport_errors - before


async def onboard(base_url: str, operator_key: str) -> tuple[CourseClient, str]:
    transport = Transport("raw", base_url, 2, 30.0)
    b = CourseClient(1, transport, Recorder(), integrations=4)
    a = CourseClient(0, transport, Recorder(), integrations=4)
    try:
        await a.onboard(operator_key)
        await b.onboard(operator_key)
    except CourseFailed as exc:
        raise SystemExit(f"onboarding failed: {exc}: {a.recorder.errors + b.recorder.errors}") from None
    assert a.tenant is not None
    return b, a.tenant.clinic_key


async def measure(args: argparse.Namespace, base_url: str, operator_key: str) -> dict[str, Any]:
    """Rounds of B alone then B flooded, so that a noisy moment on a shared machine weighs on both."""
    b, a_key = await onboard(base_url, operator_key)
    alone: list[int] = []
    flooded: list[int] = []
    errors = {"alone": 0, "flooded": 0}
    counts = {"accepted": 0, "limited": 0, "other": 0, "transport_errors": 0}
    flood_seconds = args.warmup + args.duration + 2.0
    context = multiprocessing.get_context("spawn")
    for round_ in range(1, args.rounds + 1):
        say(f"round {round_}/{args.rounds}: clinic B alone, {args.b_rate:g} commands/s for "
            f"{args.warmup:g} + {args.duration:g} s ...")
        latencies, failed = await paced_b(b, args.b_rate, args.warmup, args.duration)
        alone += latencies
        errors["alone"] += failed
        say(f"round {round_}/{args.rounds}: clinic A floods with {args.flood_connections} connections "
            "while B runs again ...")
        out = context.Queue()
        flooder = context.Process(target=flood_process,
                                  args=(base_url, a_key, args.flood_connections, flood_seconds, out), daemon=True)
        flooder.start()
        try:
            await asyncio.sleep(1.0)  # the flood is under way (the spawned interpreter started) before B's warm-up
            latencies, failed = await paced_b(b, args.b_rate, args.warmup, args.duration)
            flooded += latencies
            errors["flooded"] += failed
            for name, value in (await asyncio.get_running_loop().run_in_executor(
                    None, out.get, True, flood_seconds + 60)).items():
                counts[name] += value
        finally:
            flooder.join(timeout=10)
            if flooder.is_alive():
                flooder.kill()
        await asyncio.sleep(2.0)  # A's queued requests drain before B runs alone again
    b_alone, b_flooded = latency_summary(alone), latency_summary(flooded)
    ratio = b_flooded["p99_ms"] / b_alone["p99_ms"] if alone and flooded else None
    flood_total = flood_seconds * args.rounds
    return {
        "b_alone": {**b_alone, "errors": errors["alone"]}, "b_flooded": {**b_flooded, "errors": errors["flooded"]},
        "a_flood": counts, "a_flood_per_s": {k: round(v / flood_total, 1) for k, v in counts.items()},
        "p99_ratio": round(ratio, 2) if ratio else None,
        "within": bool(ratio is not None and ratio <= args.max_ratio and not any(errors.values())),
    }


def run(args: argparse.Namespace, base_url: str, operator_key: str) -> dict[str, Any]:
    return asyncio.run(measure(args, base_url, operator_key))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--b-rate", type=float, default=20.0, help="clinic B's commands per second (default 20)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per phase (default 20)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of B alone, then flooded (default 2)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each phase's window (default 3)")
    p.add_argument("--flood-connections", type=int, default=32, help="clinic A's connections (default 32)")
    p.add_argument("--max-ratio", type=float, default=1.5, help="B's p99 flooded / alone must stay under this")
    p.add_argument("--base-url", help="an already-running server (KACT_SIMULATED_TIME=1)")
    p.add_argument("--operator-key", help="its operator key (needed with --base-url)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the started server, e.g. KACT_RATE_LIMIT=0 (repeatable)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to this long for the machine to be idle (as http_load.py)")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--keep-schema", action="store_true")
    args = p.parse_args(argv)
    if args.base_url and not args.operator_key:
        p.error("--base-url needs --operator-key")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    quiet = wait_quiet(args.wait_quiet)
    output = RESULTS_DIR / f"noisy-{datetime.now().strftime('%Y%m%dT%H%M%SZ')}.json"
    if args.base_url:
        result = run(args, args.base_url, args.operator_key)
    else:
        with started_server(args, output.with_suffix(".server.log")) as server:
            result = run(args, server.base_url, server.operator_key)
    result["config"] = {k: v for k, v in vars(args).items() if k != "operator_key"}
    result["quiet_wait"] = quiet
    result["config"]["database"] = "external" if os.environ.get("KACT_DATABASE_URL") else "embedded"
    output.write_text(json.dumps(result, indent=2, default=str))
    alone, flooded, a = result["b_alone"], result["b_flooded"], result["a_flood_per_s"]
    print(f"clinic B alone   ({args.b_rate:g}/s): {alone.get('count')} commands, p50 {alone.get('p50_ms')} ms, "
          f"p99 {alone.get('p99_ms')} ms, errors {alone['errors']}")
    print(f"clinic B flooded ({args.b_rate:g}/s): {flooded.get('count')} commands, p50 {flooded.get('p50_ms')} ms, "
          f"p99 {flooded.get('p99_ms')} ms, errors {flooded['errors']}")
    print(f"clinic A ({args.flood_connections} connections): {a['accepted']}/s accepted, {a['limited']}/s refused 429, "
          f"{a['other']}/s other, {a['transport_errors']}/s transport errors (totals {result['a_flood']})")
    print(f"B's p99 flooded / alone: {result['p99_ratio']} (within {args.max_ratio:g}x: "
          f"{'yes' if result['within'] else 'NO'})")
    print(f"results: {output}")
    return 0 if result["within"] else 1


if __name__ == "__main__":
    sys.exit(main())
