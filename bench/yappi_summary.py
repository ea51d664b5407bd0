"""Summarise the CPU profile written by the `yappi_cpu` experiment (bench/experiments/sitecustomize.py).

    python bench/yappi_summary.py /tmp/kact-yappi.txt [--top 25]

yappi's own overhead inflates functions with many small calls (deepcopy, psycopg's generators): read the
shares as a ranking, not as milliseconds.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

# Inclusive CPU of the calls that make up one command.
KEY_FUNCTIONS = (
    "Courses.execute", "Repository.get", "Courses.save", "Application.save", "PostgresApplicationRecorder.insert_events",
    "PostgresApplicationRecorder.select_events", "Mapper.to_stored_event", "Mapper.to_domain_event",
    "AESCipher.encrypt", "AESCipher.decrypt", "deepcopy", "Litestar.__call__", "HTTPRoute.handle",
    "ListenFirstSubscription._loop_on_pull", "Indexer._run", "CourseIndexView.apply", "run_sync",
    "ConnectionPool.getconn",
)


def short(module: str) -> str:
    for marker in ("site-packages/", "services/scheduler/", "python3.11/"):
        if marker in module:
            return module.split(marker, 1)[1]
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stats", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    rows = []
    for line in args.stats.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, module, ncall, tsub, ttot = line.split("\t")
        rows.append((name, short(module), int(ncall), float(tsub), float(ttot)))
    total = sum(r[3] for r in rows)
    print(f"{total:.2f} CPU seconds profiled")
    print(f"\ntop {args.top} by self CPU")
    for name, module, ncall, tsub, _ in sorted(rows, key=lambda r: -r[3])[: args.top]:
        print(f"  {100 * tsub / total:5.1f}%  {ncall:>8}  {name[:45]:<45} {module[:70]}")
    packages: Counter[str] = Counter()
    for _, module, _, tsub, _ in rows:
        packages[module.split("/")[0] if "/" in module else module.split(":")[0]] += tsub
    print("\nself CPU by package")
    for package, tsub in packages.most_common(15):
        print(f"  {100 * tsub / total:5.1f}%  {package}")
    print("\ninclusive CPU of key calls")
    for name, module, ncall, _, ttot in sorted(rows, key=lambda r: -r[4]):
        if name in KEY_FUNCTIONS and ttot / total > 0.005:
            print(f"  {100 * ttot / total:5.1f}%  {ncall:>8}  {name[:45]:<45} {module[:70]}")


if __name__ == "__main__":
    main()
