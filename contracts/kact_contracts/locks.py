"""PostgreSQL advisory lock keys the services share (one schema migration at a time, one relay, ...)."""

from __future__ import annotations

import hashlib


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a job name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def migration_lock(schema: str) -> int:
    return lock_key(f"{schema}.migrate")
