"""PostgreSQL advisory lock keys the services share (one schema migration at a time, one relay, ...)."""

from __future__ import annotations

import hashlib


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a job name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def migration_lock(schema: str) -> int:
    return lock_key(f"{schema}.migrate")


# Whether any session of this database holds the advisory lock `pg_advisory_lock(key)` (shown in pg_locks as
# classid = the key's high 32 bits, objid = its low 32 bits, objsubid = 1). Parameters: `lock_parts(key)`.
LOCK_HELD_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND classid = $1::bigint::oid AND objid = $2::bigint::oid"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)


def lock_parts(key: int) -> tuple[int, int]:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF
