"""The use cases of courses, sessions and dose approvals: one method each, for any edge (HTTP, jobs, tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from scheduler.api_keys import Principal
from scheduler.application import access
from scheduler.application.audit import reading
from scheduler.application.calendars import CalendarIds, Held
from scheduler.application.courses import Courses, Work
from scheduler.application.errors import (
    AlreadyCreatedError,
    CourseNotFoundError,
    ForbiddenError,
    UnknownReferenceError,
)
from scheduler.application.ids import new_id
from scheduler.application.runner import Steps, run_steps, run_steps_async
from scheduler.domain.calendar import Calendar, Resource, Slot
from scheduler.domain.course import Course, DoseApproval, Hold, HostFacts, Kind, Session, SessionStatus, Status
from scheduler.domain.errors import RulesBrokenError, UnknownApprovalError, Violation
from scheduler.domain.protocol import Protocol as CourseProtocol
from scheduler.domain.rules import booking, hours

T = TypeVar("T")
Row = dict[str, Any]


class Directory(Protocol):
    """What the use cases read of the directory (clinics, staff, rooms, partnerships) and the access log."""

    async def clinic(self, clinic_id: UUID) -> Row | None: ...

    async def room(self, room_id: UUID) -> Row | None: ...

    async def clinicians(self, ids: list[UUID]) -> dict[str, Row]: ...

    async def host_facts(self, host_clinic_id: UUID, home_clinic_id: UUID, kind: str) -> tuple[bool, bool]: ...

    async def hours_of(self, clinic_id: UUID,
                       clinician_ids: list[UUID]) -> tuple[hours.Schedule, dict[str, hours.WorkingHours]]: ...

    async def log_access(self, principal: Principal, action: str, course_id: UUID | None) -> None: ...

    async def log_accesses(self, principal: Principal, action: str, course_ids: list[UUID]) -> None: ...

    async def log_reads(self, principal: Principal, action: str, course_ids: Sequence[UUID | None], *,
                        outcome: str = "ok", request_id: str | None = None) -> None: ...


class CourseIndex(Protocol):
    """The read model's queries the use cases answer from (synchronous: run in a worker thread)."""

    def list_approvals(self, prescriber_id: str | None, status: str | None) -> list[Row]: ...


@dataclass(frozen=True)
class Record:
    """What a clinic records about a session: held (a medicine session's doses, vitals, adverse events and
    discharge) or missed, attributed to one of the recording clinic's clinicians."""

    outcome: str  # held | missed
    clinician_id: UUID
    notes: str = ""
    reason: str = ""
    doses: tuple[Row, ...] = ()
    vitals: tuple[Row, ...] = ()
    adverse_events: tuple[Row, ...] = ()
    discharged_at: datetime | None = None
    ended_at: datetime | None = None
    monitoring_continues: bool = False
    not_dosed_reason: str | None = None


@dataclass(frozen=True)
class Slotted:
    """A session to book or hold: what, when, where (None: the home clinic), with which room and clinicians."""

    kind: str
    partners: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    clinic_id: UUID | None
    room_id: UUID | None
    clinician_ids: tuple[UUID, ...]
    timezone: str | None = None
    hours_override_reason: str | None = None


@dataclass(frozen=True)
class Placing:
    """What the directory says of a slot's host, read before the command: its id and zone, I11's facts, its hours
    and booking rules, the working hours of the slot's clinicians."""

    host_id: str
    timezone: str
    host: HostFacts | None
    schedule: hours.Schedule
    staff_hours: dict[str, hours.WorkingHours]


class Scheduling:
    """Courses and the calendars their sessions hold: each use case checks who acts and what the directory says,
    then runs one command over the course and every calendar involved, saved together."""

    def __init__(self, courses: Courses, directory: Directory, index: CourseIndex, calendars: CalendarIds,
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]) -> None:
        self.courses, self.directory, self.index, self.calendars = courses, directory, index, calendars
        self.in_thread = in_thread

    async def _run(self, steps: Steps[T]) -> T:
        return await run_steps_async(steps, self.in_thread)

    async def _on_course(self, course_id: UUID, principal: Principal, command: Callable[[Course], Any],
                         now: datetime | None = None) -> Course:
        """Run `command` on a course of the principal's own clinic, at `now`; returns the course as saved."""
        access.clinic_of(principal)

        def on_course(work: Work) -> Course:
            course = access.owned(work.course(course_id), principal)
            command(course)
            return course

        return await self._run(self.courses.execution(on_course, now, principal.clinic_id))

    # ----------------------------------------------------------------- courses

    async def open_course(self, principal: Principal, *, model: str, protocol: CourseProtocol,
                          partners: dict[str, str], first_dosed: str, now: datetime | None = None) -> Course:
        clinic_id = access.clinic_of(principal)

        def opening(work: Work) -> Course:
            course = Course.open(course_id=new_id("course"), home_clinic_id=clinic_id, model=model, protocol=protocol,
                                 partners=partners, first_dosed=first_dosed, by=principal.ref, now=now,
                                 origin=work.origin)
            work.add(course)
            self._join(work, course)
            return course

        return await self._run(self.courses.execution(opening, now, principal.clinic_id))

    async def get_course(self, principal: Principal, course_id: UUID,
                         as_of: int | datetime | None = None) -> Course:
        """The course now, or as it stood at a version or an instant (replayed from its events: what had been
        recorded by then)."""
        async with reading(self.directory, principal, "read_course" if as_of is None else "replay_course",
                           course_id):
            if isinstance(as_of, datetime):
                at = as_of
                course: Course = await self.in_thread(lambda: self.courses.course_at(course_id, at))
            else:
                course = await self.in_thread(lambda: self.courses.get_course(course_id, as_of))
            if not access.may_see(course.home_clinic_id, principal):
                raise CourseNotFoundError(course_id)
            return course

    async def history(self, principal: Principal, course_id: UUID) -> list[Any]:
        async with reading(self.directory, principal, "read_history", course_id):
            events: list[Any] = await self.in_thread(lambda: self.courses.history(course_id))
            if not access.may_see(events[0].home_clinic_id, principal):  # the opening event names the home clinic
                raise CourseNotFoundError(course_id)
            return events

    async def record_screening(self, principal: Principal, course_id: UUID, *, partner: str, result: str,
                               clinician_id: UUID, notes: str, now: datetime | None = None) -> Course:
        await self._staff_of(principal, [clinician_id], {access.clinic_of(principal)})
        return await self._on_course(course_id, principal, lambda c: c.record_screening(
            partner=partner, result=result, clinician_id=str(clinician_id), notes=notes, by=principal.ref), now)

    async def acknowledge_missed_window(self, principal: Principal, course_id: UUID, session_id: str,
                                        reason: str, clinician_id: UUID, now: datetime) -> Course:
        """A clinician of the home clinic, named, acknowledges a missed integration window (I4)."""
        await self._staff_of(principal, [clinician_id], {access.clinic_of(principal)})
        return await self._on_course(course_id, principal, lambda c: c.acknowledge_missed_window(
            session_id=session_id, reason=reason, by=principal.ref, clinician_id=str(clinician_id), now=now), now)

    async def complete(self, principal: Principal, course_id: UUID, now: datetime | None = None) -> Course:
        return await self._on_course(course_id, principal, lambda c: c.complete(by=principal.ref), now)

    async def discontinue(self, principal: Principal, course_id: UUID, reason: str,
                          now: datetime | None = None) -> Course:
        """Discontinue the course; its booked sessions no longer hold their calendars."""
        access.clinic_of(principal)

        def discontinuing(work: Work) -> Course:
            course = access.owned(work.course(course_id), principal)
            booked = [s for s in course.sessions.values() if s.status is SessionStatus.BOOKED]
            holds = list(course.holds.values())
            course.discontinue(reason=reason, by=principal.ref)
            for placed in [*booked, *holds]:
                self._release(work, course, placed)
            return course

        return await self._run(self.courses.execution(discontinuing, now, principal.clinic_id))

    # ---------------------------------------------------------------- sessions

    async def book_session(self, principal: Principal, course_id: UUID, *, kind: str, partners: list[str],
                           starts_at: datetime, ends_at: datetime, clinic_id: UUID | None, room_id: UUID | None,
                           clinician_ids: list[UUID], timezone: str | None,
                           hours_override_reason: str | None = None, now: datetime | None = None) -> Session:
        slot = Slotted(kind, tuple(partners), starts_at, ends_at, clinic_id, room_id, tuple(clinician_ids), timezone,
                       hours_override_reason)
        placing = await self._placing(principal, slot)
        session_id = str(new_id("session"))

        def booking(work: Work) -> Session:
            course = access.owned(work.course(course_id), principal)
            return self._book_in(work, course, principal, session_id, slot, placing, now)

        return await self._run(self.courses.execution(booking, now, principal.clinic_id))

    async def book_plan(self, principal: Principal, course_id: UUID, slots: list[Slotted],
                        now: datetime) -> list[Session]:
        """Book every session of a plan, in order, in one transaction: all or none (each judged beside the ones
        before it, as a clinic booking them one after the other would be)."""
        placings = [await self._placing(principal, slot) for slot in slots]
        session_ids = [str(new_id(f"session-{i}")) for i in range(len(slots))]

        def booking(work: Work) -> list[Session]:
            course = access.owned(work.course(course_id), principal)
            return [_as_item(i, lambda: self._book_in(work, course, principal, sid, slot, placing, now))
                    for i, (sid, slot, placing) in enumerate(zip(session_ids, slots, placings, strict=True))]

        return await self._run(self.courses.execution(booking, now, principal.clinic_id))

    async def _placing(self, principal: Principal, slot: Slotted) -> Placing:
        """What a booking or hold of `slot` needs from the directory, read before the command runs: the host
        (known, its room and clinicians its own, I11's facts) and its hours and booking rules."""
        home = access.clinic_of(principal)
        host_id = str(slot.clinic_id or home)
        clinic = await self.directory.clinic(UUID(host_id))
        if clinic is None:
            raise UnknownReferenceError(f"clinic {host_id} is unknown")
        await self._room_of(slot.room_id, host_id)
        await self._staff_of(principal, list(slot.clinician_ids), {host_id})
        host = await self._host_facts(host_id, home, slot.kind)
        schedule, staff_hours = await self.directory.hours_of(UUID(host_id), list(slot.clinician_ids))
        return Placing(host_id, clinic["timezone"], host, schedule, staff_hours)

    def _book_in(self, work: Work, course: Course, principal: Principal, session_id: str, slot: Slotted,
                 placing: Placing, now: datetime | None) -> Session:
        """Book `slot` in the course and its calendars, within a command, or refuse naming every rule broken."""
        if session_id in course.sessions:  # an earlier run of this request booked it (ids.new_id)
            raise AlreadyCreatedError("session", session_id)
        clinician_ids = list(slot.clinician_ids)
        outside, override = _clinic_rules(placing.schedule, placing.staff_hours, clinician_ids, slot.starts_at,
                                          slot.ends_at, slot.hours_override_reason, now)
        broken = _refusals(lambda: course.book_session(
            session_id=session_id, kind=slot.kind, partners=slot.partners, starts_at=slot.starts_at,
            ends_at=slot.ends_at, clinic_id=placing.host_id, room_id=str(slot.room_id) if slot.room_id else None,
            clinician_ids=[str(i) for i in clinician_ids], timezone=slot.timezone or placing.timezone,
            host=placing.host, hours_override=override, by=principal.ref, now=now))
        if broken or outside:  # the course's rules, the hours and the calendars', named together
            raise RulesBrokenError([*broken, *outside, *self._clashes_of_booking(
                work, course, list(slot.partners), slot.starts_at, slot.ends_at, slot.room_id, clinician_ids)])
        session = course.sessions[session_id]
        self._reserve(work, course, session, self.calendars.held_by(course, session), placing.schedule, now)
        return session

    async def reschedule_session(self, principal: Principal, course_id: UUID, session_id: str, *,
                                 starts_at: datetime, ends_at: datetime, room_id: UUID | None,
                                 clinician_ids: list[UUID] | None,
                                 hours_override_reason: str | None = None, now: datetime | None = None) -> Session:
        """Move a session (a medicine session moved past an approval's expiry asks its prescriber again)."""
        home = access.clinic_of(principal)
        room = await self.directory.room(room_id) if room_id is not None else None
        if room_id is not None and room is None:
            raise UnknownReferenceError(f"room {room_id} is not a room of the hosting clinic")
        staff = await self.directory.clinicians(clinician_ids or [])
        # Where the session is hosted never changes: a session hosted away is moved only while its host's
        # partnership still covers it (I11), as the course as it stands now says.
        current: Course = access.owned(await self.in_thread(lambda: self.courses.peek(course_id)), principal)
        if session_id not in current.sessions:  # booked since this process cached the course: read the store
            current = await self.in_thread(lambda: self.courses.get_course(course_id))
        placed = current.session(session_id)
        host = await self._host_facts(placed.clinic_id, home, placed.kind.value) if placed.clinic_id != home else None
        staffed = clinician_ids if clinician_ids is not None else [UUID(i) for i in placed.clinician_ids]
        schedule, staff_hours = await self.directory.hours_of(UUID(placed.clinic_id), staffed)

        def rescheduling(work: Work) -> Session:
            course = access.owned(work.course(course_id), principal)
            session = course.session(session_id)
            # The room and clinicians must be the hosting clinic's, which only the course knows.
            if room is not None and str(room["clinic_id"]) != session.clinic_id:
                raise UnknownReferenceError(f"room {room_id} is not a room of the hosting clinic")
            _check_staff(staff, clinician_ids or [], {session.clinic_id})
            before = list(self.calendars.held_by(course, session))
            outside, override = _clinic_rules(schedule, staff_hours, staffed, starts_at, ends_at,
                                              hours_override_reason, now)
            broken = _refusals(lambda: course.reschedule_session(
                session_id=session_id, starts_at=starts_at, ends_at=ends_at,
                room_id=str(room_id) if room_id else None,
                clinician_ids=[str(i) for i in clinician_ids] if clinician_ids is not None else None,
                host=host, hours_override=override, by=principal.ref, now=now,
                new_approval_id=lambda: approval_id_for(course_id)))
            if broken or outside:
                raise RulesBrokenError([*broken, *outside])
            moved = course.sessions[session_id]
            after = list(self.calendars.held_by(course, moved))
            self._reserve(work, course, moved, after, schedule, now)
            for left in {h.calendar_id for h in before} - {h.calendar_id for h in after}:
                work.calendar(left, next(h.resource for h in before if h.calendar_id == left)).release(session_id)
            return moved

        return await self._run(self.courses.execution(rescheduling, now, principal.clinic_id))

    # ------------------------------------------------------------------ holds

    async def hold_slot(self, principal: Principal, course_id: UUID, *, kind: str, partners: list[str],
                        starts_at: datetime, ends_at: datetime, clinic_id: UUID | None, room_id: UUID | None,
                        clinician_ids: list[UUID], timezone: str | None, minutes: int | None,
                        hours_override_reason: str | None, now: datetime) -> Hold:
        """Keep a slot for the course for a few minutes (the hosting clinic's `hold_minutes`, or fewer if asked):
        judged as a booking there would be, and taken in the clinicians', room's and (at a partner clinic) the
        host's ledger, where the host's cap on a partner clinic's open holds applies."""
        (held,) = await self.hold_plan(principal, course_id, [Slotted(
            kind, tuple(partners), starts_at, ends_at, clinic_id, room_id, tuple(clinician_ids), timezone,
            hours_override_reason)], now, minutes)
        return held

    async def hold_plan(self, principal: Principal, course_id: UUID, slots: list[Slotted], now: datetime,
                        minutes: int | None = None) -> list[Hold]:
        """Hold every slot, in order, in one transaction (all or none), each judged beside the holds before it
        as the booking it would become."""
        placings = [await self._placing(principal, slot) for slot in slots]
        hold_ids = [f"hold_{new_id(f'hold-{i}').hex}" for i in range(len(slots))]

        def holding(work: Work) -> list[Hold]:
            course = access.owned(work.course(course_id), principal)
            if len(slots) == 1:
                return [self._hold_in(work, course, principal, hold_ids[0], slots[0], placings[0], minutes, now)]
            return [_as_item(i, lambda: self._hold_in(work, course, principal, hid, slot, placing, minutes, now))
                    for i, (hid, slot, placing) in enumerate(zip(hold_ids, slots, placings, strict=True))]

        return await self._run(self.courses.execution(holding, now, principal.clinic_id))

    def _hold_in(self, work: Work, course: Course, principal: Principal, hold_id: str, slot: Slotted,
                 placing: Placing, minutes: int | None, now: datetime) -> Hold:
        if hold_id in course.holds:  # an earlier run of this request took it (ids.new_id)
            raise AlreadyCreatedError("hold", hold_id)
        rules = placing.schedule.rules
        lasts = min(minutes or rules.hold_minutes, rules.hold_minutes)
        clinician_ids = list(slot.clinician_ids)
        outside, override = _clinic_rules(placing.schedule, placing.staff_hours, clinician_ids, slot.starts_at,
                                          slot.ends_at, slot.hours_override_reason, now)
        broken = _refusals(lambda: course.hold_slot(
            hold_id=hold_id, kind=slot.kind, partners=slot.partners, starts_at=slot.starts_at,
            ends_at=slot.ends_at, clinic_id=placing.host_id, room_id=str(slot.room_id) if slot.room_id else None,
            clinician_ids=[str(i) for i in clinician_ids], timezone=slot.timezone or placing.timezone,
            host=placing.host, hours_override=override, expires_at=now + timedelta(minutes=lasts),
            by=principal.ref, now=now))
        if broken or outside:
            raise RulesBrokenError([*broken, *outside])
        held = course.holds[hold_id]
        self._reserve(work, course, held, self.calendars.held_by(course, held), placing.schedule, now)
        return held

    async def book_hold(self, principal: Principal, course_id: UUID, hold_id: str, now: datetime) -> Session:
        """Book the held slot: the session takes the hold's place in every calendar, in one transaction, judged
        again as any booking (the course or the clinic's rules may have changed since it was held)."""
        (session,) = await self.book_holds(principal, course_id, [hold_id], now)
        return session

    async def book_holds(self, principal: Principal, course_id: UUID, hold_ids: list[str],
                         now: datetime) -> list[Session]:
        """Book held slots in order, in one transaction (all or none): a plan held in one call is booked in one."""
        home = access.clinic_of(principal)
        current: Course = access.owned(await self.in_thread(lambda: self.courses.get_course(course_id)), principal)
        facts = {}
        for hold_id in hold_ids:
            held = current.hold(hold_id)
            facts[hold_id] = (await self._host_facts(held.clinic_id, home, held.kind.value),
                              *await self.directory.hours_of(UUID(held.clinic_id),
                                                             [UUID(i) for i in held.clinician_ids]))
        session_ids = [str(new_id(f"session-{i}")) for i in range(len(hold_ids))]

        def booking(work: Work) -> list[Session]:
            course = access.owned(work.course(course_id), principal)
            if len(hold_ids) == 1:
                return [self._book_hold_in(work, course, principal, hold_ids[0], session_ids[0],
                                           *facts[hold_ids[0]], now)]
            return [_as_item(i, lambda: self._book_hold_in(work, course, principal, hold_id, sid, *facts[hold_id], now))
                    for i, (hold_id, sid) in enumerate(zip(hold_ids, session_ids, strict=True))]

        return await self._run(self.courses.execution(booking, now, principal.clinic_id))

    def _book_hold_in(self, work: Work, course: Course, principal: Principal, hold_id: str, session_id: str,
                      host: HostFacts | None, schedule: hours.Schedule, staff_hours: dict[str, hours.WorkingHours],
                      now: datetime) -> Session:
        if session_id in course.sessions:
            raise AlreadyCreatedError("session", session_id)
        hold = course.hold(hold_id)
        staffed = [UUID(i) for i in hold.clinician_ids]
        outside, _ = _clinic_rules(schedule, staff_hours, staffed, hold.starts_at, hold.ends_at, hold.hours_override,
                                   now)
        broken = _refusals(lambda: course.book_hold(hold_id=hold_id, session_id=session_id, host=host,
                                                    by=principal.ref, now=now))
        if broken or outside:
            raise RulesBrokenError([*broken, *outside])
        session = course.sessions[session_id]
        self._reserve(work, course, session, self.calendars.held_by(course, session), schedule, now,
                      replaces=[hold_id])
        self._release(work, course, hold)  # what the session did not take over (a ledger it does not count in)
        return session

    async def release_hold(self, principal: Principal, course_id: UUID, hold_id: str,
                           now: datetime | None = None) -> Hold:
        access.clinic_of(principal)

        def releasing(work: Work) -> Hold:
            course = access.owned(work.course(course_id), principal)
            held = course.release_hold(hold_id=hold_id, by=principal.ref)
            self._release(work, course, held)
            return held

        return await self._run(self.courses.execution(releasing, now, principal.clinic_id))

    async def cancel_session(self, principal: Principal, course_id: UUID, session_id: str, reason: str | None,
                             now: datetime, *, cancelled_by: str = "home_clinic", reason_code: str = "other",
                             note: str | None = None) -> Session:
        """The home clinic cancels a session before it starts (once started, it is held or missed), on whose behalf
        and why (`reason`: the free-text note of callers from before the classification)."""
        access.clinic_of(principal)

        def cancelling(work: Work) -> Session:
            course = access.owned(work.course(course_id), principal)
            course.cancel_session(session_id=session_id, cancelled_by=cancelled_by, reason_code=reason_code,
                                  note=note or "", reason=reason, by=principal.ref, now=now)
            session = course.sessions[session_id]
            self._release(work, course, session)
            return session

        return await self._run(self.courses.execution(cancelling, now, principal.clinic_id))

    async def report_adverse_event(self, principal: Principal, course_id: UUID, session_id: str, *, partner: str,
                                   at: datetime, kind: str, severity: str, note: str, follow_up: str,
                                   clinician_id: UUID, now: datetime) -> dict[str, Any]:
        """The home clinic, or the clinic hosting the session, reports an adverse event of a medicine session on
        its own, naming one of its clinicians; the prescriber and the home clinic are alerted at once (notifier)."""
        clinic = access.clinic_of(principal)
        await self._staff_of(principal, [clinician_id], {clinic})

        def reporting(work: Work) -> dict[str, Any]:
            course = work.course(course_id)
            access.reports_on(course, session_id, principal)
            course.report_adverse_event(session_id=session_id, partner=partner, at=at, kind=kind, severity=severity,
                                        note=note, follow_up=follow_up, clinician_id=str(clinician_id), now=now,
                                        by=principal.ref)
            return course.adverse_events[-1]

        return await self._run(self.courses.execution(reporting, now, principal.clinic_id))

    async def confirm_session(self, principal: Principal, course_id: UUID, session_id: str, *, decision: str,
                              reason: str, now: datetime | None = None) -> Session:
        """The clinic hosting a partner-hosted medicine session confirms or declines it, with its own key."""
        clinic = access.clinic_of(principal)

        def confirming(work: Work) -> Session:
            course = work.course(course_id)
            if course.home_clinic_id == clinic and course.session(session_id).clinic_id != clinic:
                raise ForbiddenError(f"only the clinic hosting session {session_id} confirms or declines it")
            if course.home_clinic_id != clinic:
                access.hosted(course, session_id, clinic)
            course.confirm_session(session_id=session_id, clinic_id=clinic, decision=decision, reason=reason,
                                   by=principal.ref)
            return course.sessions[session_id]

        return await self._run(self.courses.execution(confirming, now, principal.clinic_id))

    async def record_session(self, principal: Principal, course_id: UUID, session_id: str, record: Record,
                             now: datetime) -> Session:
        """The home clinic records any session of its course; a hosting clinic the sessions it hosts. Either
        names the clinician of its own who records it."""
        clinic = access.clinic_of(principal)
        await self._staff_of(principal, [record.clinician_id], {clinic})

        def recording(work: Work) -> Session:
            course = work.course(course_id)
            access.recordable(course, session_id, principal)
            if record.outcome == "missed":
                course.record_missed(session_id=session_id, reason=record.reason, now=now, by=principal.ref,
                                     clinician_id=str(record.clinician_id))
            else:
                course.record_held(
                    session_id=session_id, now=now, notes=record.notes, doses=[dict(d) for d in record.doses],
                    vitals=[dict(v) for v in record.vitals], adverse_events=[dict(a) for a in record.adverse_events],
                    discharged_at=record.discharged_at, ended_at=record.ended_at,
                    monitoring_continues=record.monitoring_continues, not_dosed=record.not_dosed_reason,
                    by=principal.ref,
                    clinician_id=str(record.clinician_id),
                )
            return course.sessions[session_id]

        return await self._run(self.courses.execution(recording, now, principal.clinic_id))

    async def record_discharge(self, principal: Principal, course_id: UUID, session_id: str, *,
                               discharged_at: datetime, vitals: list[Row], ended_at: datetime | None,
                               clinician_id: UUID, now: datetime) -> Session:
        """The clinic that hosts (and recorded) a medicine session records its discharge once monitoring ended."""
        clinic = access.clinic_of(principal)
        await self._staff_of(principal, [clinician_id], {clinic})

        def discharging(work: Work) -> Session:
            course = work.course(course_id)
            access.recordable(course, session_id, principal)
            course.record_discharge(session_id=session_id, discharged_at=discharged_at, vitals=[dict(v) for v in vitals],
                                    ended_at=ended_at, now=now, by=principal.ref, clinician_id=str(clinician_id))
            return course.sessions[session_id]

        return await self._run(self.courses.execution(discharging, now, principal.clinic_id))

    # ----------------------------------------------------------- dose approvals

    async def request_dose_approval(self, principal: Principal, course_id: UUID, *, session_id: str, partner: str,
                                    prescriber_id: UUID, requested_mg: float, now: datetime) -> DoseApproval:
        prescriber = (await self.directory.clinicians([prescriber_id])).get(str(prescriber_id))
        if prescriber is None or prescriber["role"] != "prescriber":
            raise UnknownReferenceError(f"prescriber {prescriber_id} is unknown")
        approval_id = approval_id_for(course_id, new_id("approval"))

        def requesting(course: Course) -> None:
            if approval_id in course.approvals:  # an earlier run of this request asked for it (ids.new_id)
                raise AlreadyCreatedError("dose approval", approval_id)
            session = course.session(session_id)
            course.request_dose_approval(
                approval_id=approval_id, session_id=session_id, partner=partner, prescriber_id=str(prescriber_id),
                requested_mg=requested_mg, prescriber_authorised=str(prescriber["clinic_id"]) == session.clinic_id,
                now=now, by=principal.ref,
            )

        course = await self._on_course(course_id, principal, requesting, now)
        return course.approvals[approval_id]

    async def withdraw_dose_approval(self, principal: Principal, course_id: UUID, approval_id: str,
                                     reason: str, now: datetime | None = None) -> DoseApproval:
        """The home clinic takes back a request that is still pending; its prescriber is told."""
        course = await self._on_course(course_id, principal, lambda c: c.withdraw_dose_approval(
            approval_id=approval_id, reason=reason, by=principal.ref), now)
        return course.approvals[approval_id]

    async def approval_queue(self, principal: Principal, status: str | None) -> list[tuple[UUID, DoseApproval]]:
        """The approvals addressed to a prescriber (the operator sees every one)."""
        async with reading(self.directory, principal, "list_dose_approvals") as read:
            if principal.kind == "clinic":
                raise ForbiddenError("the approval queue is for prescribers")
            prescriber = principal.id if principal.kind == "prescriber" else None
            rows = await self.in_thread(lambda: self.index.list_approvals(prescriber, status))
            # The queue holds ids only; the requested dose is read from the (encrypted) course itself.
            course_ids = list(dict.fromkeys(r["course_id"] for r in rows))
            courses = await self.in_thread(lambda: {cid: self.courses.get_course(cid) for cid in course_ids})
            read.show(course_ids)
            return [(r["course_id"], courses[r["course_id"]].approvals[r["approval_id"]]) for r in rows]

    async def decide_dose_approval(self, principal: Principal, approval_id: str, *, approve: bool, now: datetime,
                                   approved_mg: float | None, reason: str) -> tuple[UUID, DoseApproval]:
        course_id = course_of_approval(approval_id)
        if principal.kind != "prescriber" or course_id is None:
            raise UnknownApprovalError(approval_id)

        def deciding(work: Work) -> DoseApproval:
            # An approval addressed to someone else, or in an unknown course, is a 404 from the domain's errors.
            course = work.course(course_id)
            course.decide_dose_approval(
                approval_id=approval_id, prescriber_id=principal.id, approve=approve, now=now,
                approved_mg=approved_mg, reason=reason, by=principal.ref,
            )
            return course.approvals[approval_id]

        return course_id, await self._run(self.courses.execution(deciding, now, principal.clinic_id))

    async def override_vitals_limit(self, principal: Principal, approval_id: str, *, reading_at: datetime,
                                    systolic: int, diastolic: int, heart_rate: int | None, reason: str,
                                    now: datetime) -> tuple[UUID, DoseApproval]:
        """The prescriber an approved dose is addressed to lets one pre-dose reading above the clinic's numeric
        limit stand, on the day, up to a ceiling (I9)."""
        course_id = course_of_approval(approval_id)
        if principal.kind != "prescriber" or course_id is None:
            raise UnknownApprovalError(approval_id)

        def overriding(work: Work) -> DoseApproval:
            course = work.course(course_id)
            course.override_vitals_limit(approval_id=approval_id, prescriber_id=principal.id, reading_at=reading_at,
                                         systolic=systolic, diastolic=diastolic, heart_rate=heart_rate,
                                         reason=reason, now=now, by=principal.ref)
            return course.approvals[approval_id]

        return course_id, await self._run(self.courses.execution(overriding, now, principal.clinic_id))

    # --------------------------------------------------------------- helpers

    async def _staff_of(self, principal: Principal, ids: list[UUID], clinics: set[str]) -> None:
        _check_staff(await self.directory.clinicians(ids), ids, clinics)

    async def _room_of(self, room_id: UUID | None, clinic_id: str) -> None:
        if room_id is None:
            return
        room = await self.directory.room(room_id)
        if room is None or str(room["clinic_id"]) != clinic_id:
            raise UnknownReferenceError(f"room {room_id} is not a room of the hosting clinic")

    async def _host_facts(self, host_id: str, home_id: str, kind: str) -> HostFacts | None:
        """What I11 needs to know of the hosting clinic: for a medicine session, or any session hosted away."""
        if kind != Kind.MEDICINE.value and host_id == home_id:
            return None
        has_prescriber, partnered = await self.directory.host_facts(UUID(host_id), UUID(home_id), kind)
        return HostFacts(host_id, has_prescriber, partnered)

    def _reserve(self, work: Work, course: Course, placed: Session | Hold, held: Iterable[Held],
                 schedule: hours.Schedule, now: datetime | None, replaces: Collection[str] = ()) -> None:
        """Take the session's (or hold's) time in each calendar, or refuse with every clash (I10) and every booking
        rule of the hosting clinic it breaks (buffers, limits, its ledger's caps) at once. A partner in this course
        only holds nothing: the command relies on their calendar staying so. `replaces`: the hold a session is
        booked from, whose slot it takes over."""
        rules, zone = schedule.rules, ZoneInfo(schedule.timezone)
        hold = isinstance(placed, Hold)
        slot = booking.Candidate(str(course.id), placed.kind.value, placed.starts_at, placed.ends_at,
                                 ignore={placed.id, *replaces})
        before, after = rules.buffer(placed.kind.value)
        broken: list[Violation] = []
        taking: list[tuple[Calendar, Held]] = []
        for h in held:
            calendar = self._calendar(work, course, h)
            if h.resource is Resource.PARTNER:
                if calendar.exclusive_to(str(course.id)):
                    work.rely_on(calendar)
                    continue
                if (clash := calendar.violation(placed.starts_at, placed.ends_at, h.label, ignore=slot.ignore,
                                                now=now)):
                    broken.append(clash)
            elif h.resource is Resource.HOST:
                broken += booking.hosted_violations(rules, calendar, schedule.name, slot, zone, now,
                                                    holder=course.home_clinic_id if hold else None)
            else:
                broken += booking.resource_violations(rules, calendar, h.label, slot, zone, now)
            taking.append((calendar, h))
        if broken:
            raise RulesBrokenError(broken)
        for calendar, h in taking:
            buffered = h.resource in (Resource.CLINICIAN, Resource.ROOM)
            calendar.reserve(
                course_id=str(course.id), session_id=placed.id, starts_at=placed.starts_at, ends_at=placed.ends_at,
                label=h.label, before=before if buffered else timedelta(0), after=after if buffered else timedelta(0),
                expires_at=placed.expires_at if hold else None, holder=course.home_clinic_id if hold else None,
                kind=placed.kind.value, now=now, replaces=[r for r in replaces if r in calendar.slots])

    def _release(self, work: Work, course: Course, session: Session | Hold) -> None:
        for h in self.calendars.held_by(course, session):
            calendar = self._calendar(work, course, h)
            if h.resource is Resource.PARTNER and calendar.exclusive_to(str(course.id)):
                work.rely_on(calendar)  # nothing held; a course joining now must not import the session
            else:
                calendar.release(session.id)

    def _join(self, work: Work, course: Course) -> None:
        """A new course is recorded in each partner's calendar (taken to be new unless this process holds it)."""
        for reference in course.partners.values():
            self._partner_calendar(work, course, self.calendars.partner(course.home_clinic_id, reference),
                                   likely_new=True)

    def _calendar(self, work: Work, course: Course, h: Held) -> Calendar:
        if h.resource is Resource.PARTNER:
            return self._partner_calendar(work, course, h.calendar_id)
        return work.calendar(h.calendar_id, h.resource)

    def _partner_calendar(self, work: Work, course: Course, calendar_id: UUID, likely_new: bool = False) -> Calendar:
        """A partner's calendar, knowing whether `course` holds it alone. It records the first two courses the
        person is a partner in: the first holds it alone; the second, joining, takes in what the first holds for
        the person (read, and relied on), and from then on every course's slots are held there, so later courses
        need not be recorded (opening them writes nothing here). A course opened before calendars recorded
        courses joins on its first command that touches the calendar."""
        calendar = work.calendar(calendar_id, Resource.PARTNER, likely_new)
        if len(calendar.courses) < 2 and str(course.id) not in calendar.courses:
            others: dict[str, list[Slot]] = {}
            for other_id in calendar.courses:  # the course that held it alone, if any
                other = work.course(UUID(other_id))
                work.rely_on(other)
                others[other_id] = [
                    Slot(other_id, s.id, s.starts_at, s.ends_at) for s in other.sessions.values()
                    if _holds_slots(other, s) and any(h.calendar_id == calendar_id
                                                      for h in self.calendars.held_by(other, s))]
            calendar.join(str(course.id), others)
        return calendar

    def _clashes_of_booking(self, work: Work, course: Course, partners: list[str], starts_at: datetime,
                            ends_at: datetime, room_id: UUID | None, clinician_ids: list[UUID]) -> list[Violation]:
        """The calendars' clashes with other courses of a booking the course refused, to name them in the same
        answer (the course names its own sessions' clashes)."""
        if starts_at.tzinfo is None or ends_at.tzinfo is None or not set(partners) <= set(course.partners):
            return []
        probe = Session(id="", kind=Kind.ASSESSMENT, partners=tuple(sorted(set(partners))), starts_at=starts_at,
                        ends_at=ends_at, clinic_id="", room_id=str(room_id) if room_id else None,
                        clinician_ids=tuple(str(i) for i in clinician_ids), timezone="UTC")
        return [v for h in self.calendars.held_by(course, probe) if h.resource is not Resource.HOST
                if (v := work.calendar(h.calendar_id, h.resource).violation(
                    starts_at, ends_at, h.label, other_courses_than=str(course.id)))]


def _refusals(command: Callable[[], Any]) -> list[Violation]:
    """Run a course's command; the rules it breaks, if it refuses (named together with the clinic's and the
    calendars' by the caller)."""
    try:
        command()
    except RulesBrokenError as refused:
        return list(refused.violations)
    return []


def _as_item(index: int, step: Callable[[], T]) -> T:
    """One item of a plan booked or held in one command: a refusal says which item (0-based) broke what."""
    try:
        return step()
    except RulesBrokenError as refused:
        raise RulesBrokenError([Violation(v.rule, f"plan item {index}: {v.message}")
                                for v in refused.violations]) from None


def _clinic_rules(schedule: hours.Schedule, staff_hours: dict[str, hours.WorkingHours], clinician_ids: list[UUID],
                  starts_at: datetime, ends_at: datetime, override_reason: str | None,
                  now: datetime | None) -> tuple[list[Violation], str | None]:
    """(the hosting clinic's rules the session breaks and that refuse it, the override reason to keep with it):
    its hours, which a reason overrides (kept only when it overrode something), and its notice and horizon,
    which nothing overrides."""
    broken = hours.hours_violations(schedule, [staff_hours[str(i)] for i in clinician_ids if str(i) in staff_hours],
                                    starts_at, ends_at)
    timing = booking.timing_violations(schedule.rules, schedule.name, starts_at, now) \
        if now is not None and starts_at.tzinfo is not None else []
    reason = (override_reason or "").strip()
    if not broken:
        return timing, None
    return (timing, reason) if reason else ([*broken, *timing], None)


def _holds_slots(course: Course, session: Session) -> bool:
    """Whether the session holds its resources' time: not cancelled, nor left booked by a discontinued course."""
    if session.status is SessionStatus.CANCELLED:
        return False
    return not (course.status is Status.DISCONTINUED and session.status is SessionStatus.BOOKED)


def _check_staff(found: dict[str, Row], ids: list[UUID], clinics: set[str]) -> None:
    for cid in ids:
        row = found.get(str(cid))
        if row is None or str(row["clinic_id"]) not in clinics:
            raise UnknownReferenceError(f"clinician {cid} is not staff of the clinic concerned")


def approval_id_for(course_id: UUID, unique: UUID | None = None) -> str:
    """Approval ids name their course, so a decision finds it without waiting for the approval queue; `unique`
    (random if not given) tells it from the course's other approvals."""
    return f"apr_{course_id.hex}_{(unique or uuid4()).hex[:12]}"


def course_of_approval(approval_id: str) -> UUID | None:
    prefix, _, rest = approval_id.partition("_")
    course_hex, _, suffix = rest.partition("_")
    try:
        return UUID(hex=course_hex) if prefix == "apr" and suffix else None
    except ValueError:
        return None


def expire_holds(courses: Courses, calendars: CalendarIds, course_id: UUID, now: datetime, by: str) -> list[Hold]:
    """Record the holds of a course that ran out by `now` and free their slots (the hold watcher, in its thread;
    idempotent: a second run finds nothing to record). Holds keep no partner's calendar."""
    def expiring(work: Work) -> list[Hold]:
        course = work.course(course_id)
        expired = course.expire_holds(now=now, by=by)
        for held in expired:
            for h in calendars.held_by(course, held):
                work.calendar(h.calendar_id, h.resource).release(held.id)
        return expired

    return run_steps(courses.execution(expiring, now))
