"""Summarise a py-spy `--format raw` profile (collapsed stacks), as written by `http_load.py --profile`.

    python bench/pyspy_summary.py bench/results/<timestamp>.pyspy.txt [--top 30]

Prints: samples per thread kind, the functions with the most self time (leaf frames), and the share of
samples whose stack passes through each category (inclusive: a sample can count in several categories).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (category, regex over one frame "function (path:line)"); the first match per frame names it.
CATEGORIES = [
    ("waiting for a psycopg pool connection", r"WaitingClient\.wait "),
    ("course indexer (processing events)", r"Indexer\._run "),
    ("eventsourcing Repository.get (load + fast-forward)", r"Repository\.get \(eventsourcing/"),
    ("eventsourcing Application.save", r"Application\.save \(eventsourcing/"),
    ("AES-GCM cipher", r"\(eventsourcing/cryptography"),
    ("event mapping (to/from stored events)", r"Mapper\.(to_stored_event|to_domain_event) "),
    ("domain aggregate (scheduler/domain)", r"\(scheduler/domain/"),
    ("psycopg (event store, projection)", r"\(psycopg/|\(psycopg_pool/"),
    ("asyncpg (directory, idempotency, auth)", r"\(asyncpg/"),
    ("litestar (routing, DI, (de)serialisation)", r"\(litestar/"),
    ("msgspec", r"msgspec"),
    ("uvicorn", r"\(uvicorn/"),
    ("anyio (thread hand-off)", r"\(anyio/"),
    ("scheduler/http (handlers, views, middleware)", r"\(scheduler/http/"),
]


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stacks.append((frames.split(";"), int(count)))
    return stacks


def thread_kind(frames: list[str]) -> str:
    joined = ";".join(frames)
    if "WorkerThread.run (anyio" in joined:
        return "anyio worker threads (eventsourcing calls)"
    if "Indexer._run" in joined:
        return "course indexer"
    if "._listen (" in joined:
        return "LISTEN thread (subscription)"
    if "Runner.run (asyncio" in joined or "Server.run (uvicorn" in joined:
        return "event loop (main thread)"
    if "psycopg_pool" in joined:
        return "psycopg pool workers"
    return "other"


def short(frame: str) -> str:
    return re.sub(r"\(/[^)]*?/(site-packages|services/scheduler)/", "(", frame)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--thread", help="only stacks of this thread kind (a substring of the kinds printed)")
    p.add_argument("--grep", help="only stacks with a frame matching this regex")
    args = p.parse_args()
    stacks = parse(args.profile)
    if args.thread:
        stacks = [(f, c) for f, c in stacks if args.thread in thread_kind(f)]
    if args.grep:
        rx = re.compile(args.grep)
        stacks = [(f, c) for f, c in stacks if any(rx.search(x) for x in f)]
    total = sum(c for _, c in stacks)
    if not total:
        raise SystemExit("no samples")
    print(f"{total} samples")

    threads: Counter[str] = Counter()
    for frames, count in stacks:
        threads[thread_kind(frames)] += count
    print("\nsamples by thread kind")
    for kind, count in threads.most_common():
        print(f"  {100 * count / total:6.1f}%  {kind}")

    leaf: Counter[str] = Counter()
    for frames, count in stacks:
        leaf[short(frames[-1])] += count
    inclusive_fn: Counter[str] = Counter()
    for frames, count in stacks:
        for frame in {short(f) for f in frames}:
            inclusive_fn[frame] += count
    print(f"\ntop {args.top} functions by inclusive time")
    for frame, count in inclusive_fn.most_common(args.top):
        print(f"  {100 * count / total:6.1f}%  {frame[:150]}")

    print(f"\ntop {args.top} functions by self time")
    for frame, count in leaf.most_common(args.top):
        print(f"  {100 * count / total:6.1f}%  {frame[:150]}")

    compiled = [(name, re.compile(rx)) for name, rx in CATEGORIES]
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        seen = set()
        for frame in frames:
            f = short(frame)
            for name, rx in compiled:
                if name not in seen and rx.search(f):
                    seen.add(name)
        for name in seen:
            inclusive[name] += count
    print("\ninclusive share by category (a sample may count in several)")
    for name, _ in CATEGORIES:
        print(f"  {100 * inclusive[name] / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
