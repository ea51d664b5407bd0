"""Latency from a command's commit to its webhook's arrival, at a steady moderate load.

Starts `kact up` (scheduler, relay, notifier; simulated time) as `http_load.py` does, onboards one clinic,
registers a webhook for every event type at a local receiver (an asyncio HTTP server in this process),
then drives courses (open, 2 screenings, assessment, 4 preparation sessions: 12 commands, 13 public events
each) at a fixed total rate for a fixed time. For each webhook that arrives:

    latency = arrival (wall clock, this process) - the event's CloudEvents `time`

The event's time is taken by the scheduler while it runs the command, just before the commit, so the figure
slightly overstates commit-to-arrival. Same machine, same clock. The floor: p99 < 250 ms.

    KACT_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python bench/webhook_latency.py
    python bench/webhook_latency.py            # fully embedded
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_load import LOAD_SERVER_ENV, RESULTS_DIR, T0, iso, latency_summary, say, started_server

FLOOR_P99_MS = 250.0
PUBLIC_EVENTS_PER_COURSE = 13


class Receiver:
    """A minimal HTTP/1.1 server: records the arrival time and body of every POST, answers 204."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, dict[str, Any]]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.arrivals.append((time.time_ns(), json.loads(body)))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def drive(client: httpx.AsyncClient, operator_key: str, hook_url: str, rate: float, duration: float,
                clients: int) -> dict[str, Any]:
    clinic = (await client.post("/v1/clinics", json={"name": "Bench", "timezone": "UTC"},
                                headers={"Authorization": f"Bearer {operator_key}"})).json()
    headers = {"Authorization": f"Bearer {clinic['api_key']}"}
    hook = await client.post(f"/v1/clinics/{clinic['id']}/webhooks", json={"url": hook_url, "event_types": []},
                             headers=headers)
    assert hook.status_code == 201, hook.text
    interval = clients / rate
    stop_at = time.monotonic() + duration
    counts = {"commands": 0, "errors": 0, "courses": 0}

    async def post(path: str, body: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
        extra = {"X-Kact-Now": iso(at)} if at else {}
        response = await client.post(path, json=body, headers={**headers, **extra})
        counts["commands"] += 1
        if response.status_code >= 300:
            counts["errors"] += 1
            raise RuntimeError(f"{path}: {response.status_code} {response.text}")
        return response.json()

    async def one_client() -> None:
        # A therapist of each client's own: the clients book the same hours (I10 keeps a clinician in one).
        therapist = (await client.post(f"/v1/clinics/{clinic['id']}/clinicians",
                                       json={"name": "T", "role": "therapist"}, headers=headers)).json()
        next_at = time.monotonic()

        async def paced(path: str, body: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
            nonlocal next_at
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            return await post(path, body, at)

        begun = 0
        while time.monotonic() < stop_at:
            # Each course another couple, a week after the last: the therapist is never double-booked (I10).
            t0, couple = T0 + timedelta(days=7 * begun), uuid4().hex[:8]
            begun += 1
            course = await paced("/v1/courses", {"model": "together",
                                                 "partners": {"a": f"a-{couple}", "b": f"b-{couple}"}})
            cid = course["id"]
            for partner in ("a", "b"):
                await paced(f"/v1/courses/{cid}/screenings", {"partner": partner, "result": "eligible",
                                                              "clinician_id": therapist["id"]})
            plan = [["a", "b"], ["a"], ["b"], ["a", "b"], ["a", "b"]]
            for day, partners in enumerate(plan):
                kind = "assessment" if day == 0 else "preparation"
                start = t0 + timedelta(days=day)
                session = await paced(f"/v1/courses/{cid}/sessions", {
                    "kind": kind, "starts_at": iso(start), "ends_at": iso(start + timedelta(hours=1)),
                    "partners": partners, "clinician_ids": [therapist["id"]]}, at=t0 - timedelta(days=1))
                await paced(f"/v1/courses/{cid}/sessions/{session['id']}/record",
                            {"outcome": "held", "clinician_id": therapist["id"]}, at=start + timedelta(hours=2))
            counts["courses"] += 1

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return counts


async def measure(args: argparse.Namespace, base_url: str, operator_key: str) -> dict[str, Any]:
    receiver = Receiver()
    hook_url = await receiver.start()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        counts = await drive(client, operator_key, hook_url, args.rate, args.duration, args.clients)
    expected = counts["courses"] * PUBLIC_EVENTS_PER_COURSE
    deadline = time.monotonic() + 60
    while len(receiver.arrivals) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    latencies = []
    for arrived_ns, item in receiver.arrivals:
        event_time = datetime.fromisoformat(item["event"]["time"])
        latencies.append(arrived_ns - int(event_time.timestamp() * 1e9))
    summary = latency_summary(latencies)
    return {"commands": counts, "webhooks_expected": expected, "webhooks_received": len(receiver.arrivals),
            "latency": summary, "floor_p99_ms": FLOOR_P99_MS,
            "floor_met": bool(summary.get("p99_ms") is not None and summary["p99_ms"] < FLOOR_P99_MS
                              and len(receiver.arrivals) >= expected and counts["errors"] == 0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=50.0, help="commands per second in all (default 50)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--keep-schema", action="store_true")
    args = p.parse_args(argv)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = RESULTS_DIR / f"webhook-{stamp}.json"
    args.server_env.append("KACT_WEBHOOK_ALLOW_PRIVATE=1")  # the receiver listens on loopback
    with started_server(args, output.with_suffix(".server.log"), LOAD_SERVER_ENV) as server:
        result = asyncio.run(measure(args, server.base_url, server.operator_key))
    result["config"] = {"rate": args.rate, "clients": args.clients, "duration": args.duration,
                        "database": "external" if os.environ.get("KACT_DATABASE_URL") else "embedded"}
    output.write_text(json.dumps(result, indent=2))
    lat = result["latency"]
    say(f"commands {result['commands']['commands']} ({result['commands']['errors']} errors), webhooks "
        f"{result['webhooks_received']}/{result['webhooks_expected']}; commit->webhook p50 {lat.get('p50_ms')} ms, "
        f"p95 {lat.get('p95_ms')} ms, p99 {lat.get('p99_ms')} ms, max {lat.get('max_ms')} ms; "
        f"floor p99 < {FLOOR_P99_MS:g} ms {'met' if result['floor_met'] else 'NOT met'}")
    print(f"results: {output}")
    return 0 if result["floor_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
