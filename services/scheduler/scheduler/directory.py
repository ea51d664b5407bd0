"""Clinics, clinicians, rooms and partnerships (asyncpg); their API keys live in `scheduler.api_keys`."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg

from scheduler import api_keys
from scheduler.api_keys import OPERATOR, ApiKeys, Principal

__all__ = ["OPERATOR", "SCHEMA_SQL", "Directory", "Principal"]

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS clinics (
    id uuid PRIMARY KEY, name text NOT NULL, timezone text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL);
CREATE TABLE IF NOT EXISTS clinicians (
    id uuid PRIMARY KEY, clinic_id uuid NOT NULL REFERENCES clinics(id), name text NOT NULL,
    role text NOT NULL CHECK (role IN ('therapist', 'prescriber')),
    created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL);
CREATE INDEX IF NOT EXISTS clinicians_clinic ON clinicians (clinic_id, role);
CREATE TABLE IF NOT EXISTS rooms (
    id uuid PRIMARY KEY, clinic_id uuid NOT NULL REFERENCES clinics(id), name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL);
CREATE TABLE IF NOT EXISTS partnership_consents (
    clinic_id uuid NOT NULL REFERENCES clinics(id), partner_clinic_id uuid NOT NULL REFERENCES clinics(id),
    created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL,
    PRIMARY KEY (clinic_id, partner_clinic_id));
""" + api_keys.SCHEMA_SQL + """
CREATE TABLE IF NOT EXISTS access_log (
    id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), principal text NOT NULL,
    action text NOT NULL, course_id uuid);
CREATE INDEX IF NOT EXISTS access_log_course ON access_log (course_id, at);
"""


class Directory:
    """Who is who: tenants, staff, rooms, partnerships, and which key belongs to whom."""

    def __init__(self, pool: asyncpg.Pool, keys: ApiKeys) -> None:
        self.pool = pool
        self.keys = keys
        # Clinics, clinicians and rooms are never changed or deleted, so what was found once can be kept.
        self._clinics: dict[UUID, dict[str, Any]] = {}
        self._clinicians: dict[str, dict[str, Any]] = {}
        self._rooms: dict[UUID, dict[str, Any]] = {}

    def known(self, key: str) -> Principal | None:
        """The principal of `key` if it is the operator's or this process holds it in its key cache: no database
        lookup."""
        return self.keys.known(key)

    async def authenticate(self, key: str) -> Principal | None:
        return await self.keys.authenticate(key)

    async def create_clinic(self, name: str, timezone: str, by: Principal) -> tuple[dict[str, Any], str]:
        clinic_id = uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO clinics (id, name, timezone, created_by) VALUES ($1, $2, $3, $4) RETURNING *",
                clinic_id, name, timezone, by.ref,
            )
            _, key = await self.keys.issue("clinic", clinic_id, clinic_id, by, conn=conn)
        return dict(row), key

    async def clinic(self, clinic_id: UUID) -> dict[str, Any] | None:
        if clinic_id not in self._clinics:
            row = await self.pool.fetchrow("SELECT * FROM clinics WHERE id = $1", clinic_id)
            if row is None:
                return None
            self._clinics[clinic_id] = dict(row)
        return self._clinics[clinic_id]

    async def create_clinician(
        self, clinic_id: UUID, name: str, role: str, by: Principal
    ) -> tuple[dict[str, Any], str | None]:
        clinician_id, key = uuid4(), None
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO clinicians (id, clinic_id, name, role, created_by) VALUES ($1, $2, $3, $4, $5) "
                "RETURNING *",
                clinician_id, clinic_id, name, role, by.ref,
            )
            if role == "prescriber":
                _, key = await self.keys.issue("prescriber", clinician_id, clinic_id, by, conn=conn)
        return dict(row), key

    async def create_room(self, clinic_id: UUID, name: str, by: Principal) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "INSERT INTO rooms (id, clinic_id, name, created_by) VALUES ($1, $2, $3, $4) RETURNING *",
            uuid4(), clinic_id, name, by.ref,
        )
        return dict(row)

    async def consent_to_partnership(self, clinic_id: UUID, partner_clinic_id: UUID, by: Principal) -> bool:
        """Record one side's consent; returns whether the partnership is now agreed by both."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO partnership_consents (clinic_id, partner_clinic_id, created_by) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                clinic_id, partner_clinic_id, by.ref,
            )
            return await self._partnered(conn, clinic_id, partner_clinic_id)

    @staticmethod
    async def _partnered(conn: asyncpg.Connection, one: UUID, other: UUID) -> bool:
        count = await conn.fetchval(
            "SELECT count(*) FROM partnership_consents WHERE (clinic_id = $1 AND partner_clinic_id = $2) "
            "OR (clinic_id = $2 AND partner_clinic_id = $1)",
            one, other,
        )
        return count == 2

    async def host_facts(self, host_clinic_id: UUID, home_clinic_id: UUID) -> tuple[bool, bool]:
        """(the host has a prescriber, the host and home clinic have agreed a partnership) for I11."""
        async with self.pool.acquire() as conn:
            has_prescriber = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM clinicians WHERE clinic_id = $1 AND role = 'prescriber')", host_clinic_id
            )
            partnered = await self._partnered(conn, host_clinic_id, home_clinic_id)
        return bool(has_prescriber), partnered

    async def clinicians(self, ids: list[UUID]) -> dict[str, dict[str, Any]]:
        missing = [i for i in ids if str(i) not in self._clinicians]
        if missing:
            rows = await self.pool.fetch("SELECT * FROM clinicians WHERE id = ANY($1::uuid[])", missing)
            self._clinicians.update({str(r["id"]): dict(r) for r in rows})
        return {str(i): self._clinicians[str(i)] for i in ids if str(i) in self._clinicians}

    async def prescriber_ids(self, clinic_id: UUID) -> list[str]:
        """The clinic's prescribers, read each time (another process may have added one)."""
        rows = await self.pool.fetch(
            "SELECT id::text FROM clinicians WHERE clinic_id = $1 AND role = 'prescriber' ORDER BY id", clinic_id
        )
        return [row["id"] for row in rows]

    async def room(self, room_id: UUID) -> dict[str, Any] | None:
        if room_id not in self._rooms:
            row = await self.pool.fetchrow("SELECT * FROM rooms WHERE id = $1", room_id)
            if row is None:
                return None
            self._rooms[room_id] = dict(row)
        return self._rooms[room_id]

    async def log_access(self, principal: Principal, action: str, course_id: UUID | None) -> None:
        await self.pool.execute(
            "INSERT INTO access_log (principal, action, course_id) VALUES ($1, $2, $3)", principal.ref, action, course_id
        )
