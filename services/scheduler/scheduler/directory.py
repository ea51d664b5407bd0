"""Clinics, clinicians, rooms, partnerships and hours (asyncpg); their API keys live in `scheduler.api_keys`.

Partnerships, hours and closures change, and each change is a new row (nothing is updated or deleted), so their
history is kept: the current value is what the latest rows say."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
from kact_contracts import access_log, logs

from scheduler import access_log as access_log_store
from scheduler import api_keys
from scheduler.application.errors import AlreadyCreatedError
from scheduler.application.ids import new_id
from scheduler.api_keys import OPERATOR, ApiKeys, Principal
from scheduler.domain.rules.booking import BookingRules
from scheduler.domain.rules.hours import WEEKDAYS, Closure, Schedule, Week, WorkingHours

__all__ = ["KINDS", "OPERATOR", "SCHEMA_SQL", "Directory", "Principal"]

KINDS = ("assessment", "preparation", "medicine", "integration")  # the session kinds a partnership may cover

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
-- Each consent (with the kinds of session it covers), change of consent and end of a partnership, in order.
CREATE TABLE IF NOT EXISTS partnership_changes (
    id bigserial PRIMARY KEY, clinic_id uuid NOT NULL REFERENCES clinics(id),
    partner_clinic_id uuid NOT NULL REFERENCES clinics(id),
    change text NOT NULL CHECK (change IN ('consented', 'ended')), kinds text[] NOT NULL DEFAULT '{}',
    reason text, created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL);
CREATE INDEX IF NOT EXISTS partnership_changes_pair ON partnership_changes (clinic_id, partner_clinic_id, id);
-- Consents given before partnerships had a scope covered every kind (partnership_consents is no longer written).
INSERT INTO partnership_changes (clinic_id, partner_clinic_id, change, kinds, created_at, created_by)
SELECT c.clinic_id, c.partner_clinic_id, 'consented', '{assessment,preparation,medicine,integration}',
       c.created_at, c.created_by
FROM partnership_consents c WHERE NOT EXISTS (
    SELECT 1 FROM partnership_changes p WHERE p.clinic_id = c.clinic_id AND p.partner_clinic_id = c.partner_clinic_id)
ORDER BY c.created_at;
-- Weekly hours: the latest row of a clinic (a clinician) is its current opening (working) hours; NULL: always.
CREATE TABLE IF NOT EXISTS opening_hours (
    id bigserial PRIMARY KEY, clinic_id uuid NOT NULL REFERENCES clinics(id), intervals jsonb,
    created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL);
CREATE INDEX IF NOT EXISTS opening_hours_clinic ON opening_hours (clinic_id, id);
CREATE TABLE IF NOT EXISTS working_hours (
    id bigserial PRIMARY KEY, clinician_id uuid NOT NULL REFERENCES clinicians(id), intervals jsonb,
    created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL);
CREATE INDEX IF NOT EXISTS working_hours_clinician ON working_hours (clinician_id, id);
-- A closure is added, and may later be lifted (a second row); both rows are kept.
CREATE TABLE IF NOT EXISTS closure_changes (
    id bigserial PRIMARY KEY, closure_id uuid NOT NULL, clinic_id uuid NOT NULL REFERENCES clinics(id),
    change text NOT NULL CHECK (change IN ('added', 'lifted')), starts_on date NOT NULL, ends_on date NOT NULL,
    reason text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL);
CREATE INDEX IF NOT EXISTS closure_changes_clinic ON closure_changes (clinic_id, id);
-- A clinic's booking rules (buffers, notice, horizon, limits, holds): the latest row is in force; none: defaults.
CREATE TABLE IF NOT EXISTS booking_rules (
    id bigserial PRIMARY KEY, clinic_id uuid NOT NULL REFERENCES clinics(id), rules jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL);
CREATE INDEX IF NOT EXISTS booking_rules_clinic ON booking_rules (clinic_id, id);
-- A closure is added once (a request run again names the same closure: `ids.new_id`).
CREATE UNIQUE INDEX IF NOT EXISTS closure_changes_added ON closure_changes (closure_id) WHERE change = 'added';
""" + api_keys.SCHEMA_SQL + access_log.SCHEMA_SQL


log = logging.getLogger("kact.directory")
HOURS_TTL = 2.0


class Directory:
    """Who is who: tenants, staff, rooms, partnerships, and which key belongs to whom."""

    def __init__(self, pool: asyncpg.Pool, keys: ApiKeys) -> None:
        self.pool = pool
        self.keys = keys
        # Clinics, clinicians and rooms are never changed or deleted, so what was found once can be kept.
        self._clinics: dict[UUID, dict[str, Any]] = {}
        self._clinicians: dict[str, dict[str, Any]] = {}
        self._rooms: dict[UUID, dict[str, Any]] = {}
        # Hours and closures change now and then, and every booking reads them: each is kept for HOURS_TTL
        # seconds (a change made through another API process applies here within that time; through this one,
        # at once). One read past half that age refreshes them in the background, so that under steady load no
        # booking waits for them: (when read, what was read), by clinic or clinician id.
        self._hours: dict[UUID, tuple[float, Any]] = {}
        self._hours_changes = 0  # hours changed through this process: a read begun before must not be kept
        self._refreshing: set[UUID] = set()
        self._refreshes: set[asyncio.Task[Any]] = set()

    def known(self, key: str) -> Principal | None:
        """The principal of `key` if it is the operator's or this process holds it in its key cache: no database
        lookup."""
        return self.keys.known(key)

    async def authenticate(self, key: str) -> Principal | None:
        return await self.keys.authenticate(key)

    async def create_clinic(self, name: str, timezone: str, by: Principal) -> tuple[dict[str, Any], str]:
        clinic_id = new_id("clinic")
        async with self.pool.acquire() as conn, conn.transaction():
            row = _created("clinic", clinic_id, await conn.fetchrow(
                "INSERT INTO clinics (id, name, timezone, created_by) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (id) DO NOTHING RETURNING *",
                clinic_id, name, timezone, by.ref,
            ))
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
        clinician_id, key = new_id("clinician"), None
        async with self.pool.acquire() as conn, conn.transaction():
            row = _created("clinician", clinician_id, await conn.fetchrow(
                "INSERT INTO clinicians (id, clinic_id, name, role, created_by) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (id) DO NOTHING RETURNING *",
                clinician_id, clinic_id, name, role, by.ref,
            ))
            if role == "prescriber":
                _, key = await self.keys.issue("prescriber", clinician_id, clinic_id, by, conn=conn)
        return dict(row), key

    async def create_room(self, clinic_id: UUID, name: str, by: Principal) -> dict[str, Any]:
        room_id = new_id("room")
        return dict(_created("room", room_id, await self.pool.fetchrow(
            "INSERT INTO rooms (id, clinic_id, name, created_by) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (id) DO NOTHING RETURNING *",
            room_id, clinic_id, name, by.ref,
        )))

    async def clinic_clinicians(self, clinic_id: UUID) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT * FROM clinicians WHERE clinic_id = $1 ORDER BY created_at, id", clinic_id)
        return [dict(r) for r in rows]

    async def clinic_rooms(self, clinic_id: UUID) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT * FROM rooms WHERE clinic_id = $1 ORDER BY created_at, id", clinic_id)
        return [dict(r) for r in rows]

    # ------------------------------------------------------------ partnerships

    async def consent_to_partnership(self, clinic_id: UUID, partner_clinic_id: UUID, kinds: list[str],
                                     by: Principal) -> dict[str, Any]:
        """Record one side's consent, or its change to other kinds; returns the partnership as it now stands."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_pair(conn, clinic_id, partner_clinic_id)
            wanted = [k for k in KINDS if k in kinds]
            now = _partnership(clinic_id, partner_clinic_id, await self._pair_changes(conn, clinic_id, partner_clinic_id))
            if now["own_kinds"] != wanted:  # consenting again to the same changes nothing
                await conn.execute(
                    "INSERT INTO partnership_changes (clinic_id, partner_clinic_id, change, kinds, created_by) "
                    "VALUES ($1, $2, 'consented', $3, $4)",
                    clinic_id, partner_clinic_id, wanted, by.ref,
                )
            return _partnership(clinic_id, partner_clinic_id,
                                await self._pair_changes(conn, clinic_id, partner_clinic_id))

    async def end_partnership(self, clinic_id: UUID, partner_clinic_id: UUID, reason: str,
                              by: Principal) -> dict[str, Any] | None:
        """Either clinic ends a proposed or agreed partnership (ending an ended one changes nothing); None if the
        two never had one."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_pair(conn, clinic_id, partner_clinic_id)
            changes = await self._pair_changes(conn, clinic_id, partner_clinic_id)
            if not changes:
                return None
            if _partnership(clinic_id, partner_clinic_id, changes)["state"] != "ended":
                await conn.execute(
                    "INSERT INTO partnership_changes (clinic_id, partner_clinic_id, change, reason, created_by) "
                    "VALUES ($1, $2, 'ended', $3, $4)",
                    clinic_id, partner_clinic_id, reason, by.ref,
                )
                changes = await self._pair_changes(conn, clinic_id, partner_clinic_id)
            return _partnership(clinic_id, partner_clinic_id, changes)

    async def partnerships(self, clinic_id: UUID) -> list[dict[str, Any]]:
        """Every partnership the clinic proposed, agreed or ended, with its history, as the clinic sees it."""
        rows = await self.pool.fetch(
            "SELECT * FROM partnership_changes WHERE clinic_id = $1 OR partner_clinic_id = $1 ORDER BY id", clinic_id
        )
        pairs: dict[UUID, list[asyncpg.Record]] = {}
        for row in rows:
            other = row["partner_clinic_id"] if row["clinic_id"] == clinic_id else row["clinic_id"]
            pairs.setdefault(other, []).append(row)
        return [_partnership(clinic_id, other, changes) for other, changes in pairs.items()]

    async def host_facts(self, host_clinic_id: UUID, home_clinic_id: UUID, kind: str) -> tuple[bool, bool]:
        """(the host has a prescriber, the host and home clinic have an agreed partnership in force covering
        `kind`) for I11."""
        async with self.pool.acquire() as conn:
            has_prescriber = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM clinicians WHERE clinic_id = $1 AND role = 'prescriber')", host_clinic_id
            )
            partnership = _partnership(host_clinic_id, home_clinic_id,
                                       await self._pair_changes(conn, host_clinic_id, home_clinic_id))
        return bool(has_prescriber), partnership["state"] == "agreed" and kind in partnership["kinds"]

    @staticmethod
    async def _pair_changes(conn: asyncpg.Connection, one: UUID, other: UUID) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT * FROM partnership_changes WHERE (clinic_id = $1 AND partner_clinic_id = $2) "
            "OR (clinic_id = $2 AND partner_clinic_id = $1) ORDER BY id",
            one, other,
        )

    @staticmethod
    async def _lock_pair(conn: asyncpg.Connection, one: UUID, other: UUID) -> None:
        """Changes of one pair's partnership take turns, so each is judged on the one before (NO KEY UPDATE: rows
        that reference the clinics are still inserted meanwhile)."""
        await conn.execute("SELECT 1 FROM clinics WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE",
                           [one, other])

    # ------------------------------------------------- hours and closures

    async def set_hours(self, owner: str, owner_id: UUID, intervals: list[dict[str, str]] | None,
                        by: Principal) -> list[dict[str, Any]]:
        """A clinic's opening or a clinician's working hours from now on (None: always); returns the history."""
        table, column = _HOURS[owner]
        await self.pool.execute(
            f"INSERT INTO {table} ({column}, intervals, created_by) VALUES ($1, $2::jsonb, $3)",
            owner_id, None if intervals is None else json.dumps(intervals), by.ref,
        )
        self._forget_hours(owner_id)  # after the change: this process judges by it from now on
        return await self.hours_history(owner, owner_id)

    async def set_booking_rules(self, clinic_id: UUID, rules: BookingRules, by: Principal) -> list[dict[str, Any]]:
        """The clinic's booking rules from now on; returns every setting, the one in force last."""
        await self.pool.execute("INSERT INTO booking_rules (clinic_id, rules, created_by) VALUES ($1, $2::jsonb, $3)",
                                clinic_id, json.dumps(rules.to_dict()), by.ref)
        self._forget_hours(clinic_id)
        return await self.booking_rules_history(clinic_id)

    async def booking_rules_history(self, clinic_id: UUID) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT * FROM booking_rules WHERE clinic_id = $1 ORDER BY id", clinic_id)
        return [{"rules": BookingRules.from_dict(json.loads(r["rules"])), "at": r["created_at"], "by": r["created_by"]}
                for r in rows]

    async def hours_history(self, owner: str, owner_id: UUID) -> list[dict[str, Any]]:
        """Every setting of the hours, the current one last (none: always open or available)."""
        table, column = _HOURS[owner]
        rows = await self.pool.fetch(f"SELECT * FROM {table} WHERE {column} = $1 ORDER BY id", owner_id)
        return [{"intervals": _intervals(r["intervals"]), "at": r["created_at"], "by": r["created_by"]} for r in rows]

    async def add_closure(self, clinic_id: UUID, starts_on: date, ends_on: date, reason: str,
                          by: Principal) -> dict[str, Any]:
        closure_id = new_id("closure")
        row = _created("closure", closure_id, await self.pool.fetchrow(
            "INSERT INTO closure_changes (closure_id, clinic_id, change, starts_on, ends_on, reason, created_by) "
            "VALUES ($1, $2, 'added', $3, $4, $5, $6) "
            "ON CONFLICT (closure_id) WHERE change = 'added' DO NOTHING RETURNING *",
            closure_id, clinic_id, starts_on, ends_on, reason, by.ref,
        ))
        self._forget_hours(clinic_id)
        return dict(row)

    async def lift_closure(self, clinic_id: UUID, closure_id: UUID, by: Principal) -> bool:
        """Lift a closure of the clinic (lifting a lifted one changes nothing); False if it has no such closure."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_pair(conn, clinic_id, clinic_id)
            rows = await conn.fetch(
                "SELECT * FROM closure_changes WHERE clinic_id = $1 AND closure_id = $2 ORDER BY id", clinic_id,
                closure_id,
            )
            if rows and rows[-1]["change"] == "added":
                await conn.execute(
                    "INSERT INTO closure_changes (closure_id, clinic_id, change, starts_on, ends_on, reason, "
                    "created_by) VALUES ($1, $2, 'lifted', $3, $4, $5, $6)",
                    closure_id, clinic_id, rows[-1]["starts_on"], rows[-1]["ends_on"], rows[-1]["reason"], by.ref,
                )
        self._forget_hours(clinic_id)
        return bool(rows)

    async def closure_changes(self, clinic_id: UUID) -> list[dict[str, Any]]:
        """Every closure added or lifted, in order."""
        rows = await self.pool.fetch("SELECT * FROM closure_changes WHERE clinic_id = $1 ORDER BY id", clinic_id)
        return [dict(r) for r in rows]

    async def hours_of(self, clinic_id: UUID,
                       clinician_ids: list[UUID]) -> tuple[Schedule, dict[str, WorkingHours]]:
        """What the hours rules need to judge a session at the clinic with these clinicians."""
        clinic = await self.clinic(clinic_id)
        assert clinic is not None
        staff = await self.clinicians(clinician_ids)
        now = time.monotonic()
        kept = {i: v[1] for i in [clinic_id, *clinician_ids]
                if (v := self._hours.get(i)) is not None and now - v[0] < HOURS_TTL}
        stale = [i for i in clinician_ids if i not in kept]
        if clinic_id not in kept or stale:
            kept.update(await self._read_hours(clinic_id if clinic_id not in kept else None, stale))
        else:
            aging = [i for i in [clinic_id, *clinician_ids]
                     if now - self._hours[i][0] > HOURS_TTL / 2 and i not in self._refreshing]
            if aging:
                self._refresh_hours(clinic_id if clinic_id in aging else None, [i for i in aging if i != clinic_id])
        opening_week, closures_kept, rules = kept[clinic_id]
        schedule = Schedule(name=clinic["name"], timezone=clinic["timezone"], opening=opening_week,
                            closures=closures_kept, rules=rules)
        return schedule, {cid: WorkingHours(row["name"], kept[UUID(cid)]) for cid, row in staff.items()}

    async def _read_hours(self, clinic_id: UUID | None, clinician_ids: list[UUID]) -> dict[UUID, Any]:
        """The clinic's opening hours and closures and the clinicians' working hours as stored now, kept for
        HOURS_TTL from when the read began (unless this process changed hours meanwhile)."""
        began, changes = time.monotonic(), self._hours_changes
        read: dict[UUID, Any] = {}
        async with self.pool.acquire() as conn:
            if clinic_id is not None:
                opening = await conn.fetchval(
                    "SELECT intervals FROM opening_hours WHERE clinic_id = $1 ORDER BY id DESC LIMIT 1", clinic_id
                )
                closures = await conn.fetch(
                    "SELECT DISTINCT ON (closure_id) * FROM closure_changes WHERE clinic_id = $1 "
                    "ORDER BY closure_id, id DESC", clinic_id,
                )
                rules = await conn.fetchval(
                    "SELECT rules FROM booking_rules WHERE clinic_id = $1 ORDER BY id DESC LIMIT 1", clinic_id
                )
                read[clinic_id] = (_week(_intervals(opening)), tuple(
                    Closure(c["starts_on"], c["ends_on"], c["reason"]) for c in closures if c["change"] == "added"),
                    BookingRules.from_dict(json.loads(rules) if rules else None))
            if clinician_ids:
                working = await conn.fetch(
                    "SELECT DISTINCT ON (clinician_id) clinician_id, intervals FROM working_hours "
                    "WHERE clinician_id = ANY($1::uuid[]) ORDER BY clinician_id, id DESC", clinician_ids,
                )
                found = {r["clinician_id"]: _week(_intervals(r["intervals"])) for r in working}
                read.update({i: found.get(i) for i in clinician_ids})
        if changes == self._hours_changes:
            self._hours.update({i: (began, value) for i, value in read.items()})
        return read

    def _refresh_hours(self, clinic_id: UUID | None, clinician_ids: list[UUID]) -> None:
        """Read these hours again in the background (they are still fresh enough for the booking at hand)."""
        ids = {*clinician_ids, *([clinic_id] if clinic_id else [])}
        self._refreshing |= ids
        task = asyncio.get_running_loop().create_task(self._read_hours(clinic_id, clinician_ids))
        self._refreshes.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._refreshes.discard(task)
            self._refreshing -= ids
            if not task.cancelled() and task.exception() is not None:  # they expire, and a booking reads them
                log.warning("hours not refreshed: %s", task.exception())

        task.add_done_callback(done)

    def _forget_hours(self, owner_id: UUID) -> None:
        self._hours_changes += 1
        self._hours.pop(owner_id, None)

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

    async def log_reads(self, principal: Principal, action: str, course_ids: Sequence[UUID | None], *,
                        outcome: str = access_log.OK, request_id: str | None = None) -> None:
        """One read: a row per course it showed (None: a row without a course), in one statement. Use cases log
        through `application.audit.reading`, which gives the outcome."""
        await access_log_store.insert(self.pool, principal.ref, action, course_ids, outcome, request_id)

    # The two below are kept for callers written before `audit.reading` (they log a read as ok).

    async def log_access(self, principal: Principal, action: str, course_id: UUID | None) -> None:
        await self.log_reads(principal, action, [course_id], request_id=logs.request_id())

    async def log_accesses(self, principal: Principal, action: str, course_ids: list[UUID]) -> None:
        """One read of several courses' data, a row per course, in one statement."""
        if course_ids:
            await self.log_reads(principal, action, course_ids, request_id=logs.request_id())


_HOURS = {"clinic": ("opening_hours", "clinic_id"), "clinician": ("working_hours", "clinician_id")}


def _created(kind: str, new: UUID, row: asyncpg.Record | None) -> asyncpg.Record:
    """The row a creation inserted; none (its id was taken): an earlier run of the same request created it."""
    if row is None:
        raise AlreadyCreatedError(kind, new)
    return row


def _intervals(stored: str | None) -> list[dict[str, str]] | None:
    return None if stored is None else json.loads(stored)


def _week(intervals: list[dict[str, str]] | None) -> Week | None:
    """Intervals as the API gives them ({"weekday": "monday", "opens": "09:00", "closes": "17:30"}) by weekday."""
    if intervals is None:
        return None
    week: dict[int, list[tuple[int, int]]] = {}
    for i in intervals:
        week.setdefault(WEEKDAYS.index(i["weekday"]), []).append((_minutes(i["opens"]), _minutes(i["closes"])))
    return week


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _partnership(clinic_id: UUID, partner_clinic_id: UUID, changes: list[asyncpg.Record]) -> dict[str, Any]:
    """The partnership of two clinics from its changes, as `clinic_id` sees it: proposed (one side consented),
    agreed (both; it covers the kinds both consented to) or ended (an end since the last consents)."""
    consents: dict[UUID, list[str]] = {}
    for change in changes:
        if change["change"] == "ended":
            consents = {}  # a partnership ended is proposed again from scratch
        else:
            consents[change["clinic_id"]] = list(change["kinds"])
    own, theirs = consents.get(clinic_id), consents.get(partner_clinic_id)
    agreed = own is not None and theirs is not None
    return {
        "clinic_id": clinic_id,
        "partner_clinic_id": partner_clinic_id,
        "state": "agreed" if agreed else "proposed" if consents else "ended",
        "kinds": [k for k in KINDS if agreed and k in own and k in theirs],
        "own_kinds": own,
        "partner_kinds": theirs,
        "history": [{"clinic_id": c["clinic_id"], "change": c["change"], "kinds": list(c["kinds"]),
                     "reason": c["reason"], "at": c["created_at"], "by": c["created_by"]} for c in changes],
    }
