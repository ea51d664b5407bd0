"""A couple's course: the event-sourced aggregate, its events, and the commands checked against the rules."""

from __future__ import annotations

import copy
from dataclasses import field, replace
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.domain import Aggregate

from scheduler.domain.errors import (
    InvalidCommandError,
    NotAddressedError,
    NotHostingError,
    RulesBrokenError,
    UnknownHoldError,
    Violation,
)
from scheduler.domain.model import (
    PARTNERS,
    ApprovalStatus,
    Cancellation,
    CancelledBy,
    CancelReason,
    Confirmation,
    DoseApproval,
    Hold,
    HostFacts,
    Kind,
    MissedWindow,
    Phase,
    Session,
    SessionStatus,
    Stage,
    Status,
    VitalsOverride,
    needs_confirmation,
    parse_cancellation,
    parse_kind,
    time_problems,
    utc,
)
from scheduler.domain.protocol import Model, Protocol
from scheduler.domain.rules import dosing, hosting, milestones, monitoring, placement
from scheduler.domain.rules.lifecycle import (
    booked_violations,
    closed_violations,
    not_started_violations,
    past_violations,
    started_violations,
)
from scheduler.domain.state import CourseState

# Defined in model.py; importers written when this module held them all still find them here.
__all__ = [
    "PARTNERS",
    "ApprovalStatus",
    "CancelReason",
    "Cancellation",
    "CancelledBy",
    "Confirmation",
    "Course",
    "DoseApproval",
    "HostFacts",
    "Kind",
    "MissedWindow",
    "Phase",
    "Session",
    "SessionStatus",
    "Stage",
    "Status",
    "needs_confirmation",
]


class Origin(NamedTuple):
    """Where the command that records an event came from: its W3C trace context (`traceparent`: the trace goes
    on from the event store to the bus and the webhooks) and the HTTP request's id. Kept in the stored (encrypted)
    event only; the bus carries the trace context alone."""

    traceparent: str | None = None
    request_id: str | None = None
    clinic_id: str | None = None  # the acting principal's clinic (a clinic's own id; a prescriber's clinic)


class Course(CourseState, Aggregate):
    """One couple's course: assessment, preparation, medicine and integration, as one event stream."""

    TOPIC = "kact.course:Course"

    class Event(Aggregate.Event):
        by: str
        # When the fact happened by the clock of the command that recorded it (the server's, or the simulated one
        # under simulated time); `timestamp` is when it was recorded. Events stored before it was kept lack it.
        occurred_at: datetime | None = field(default=None, kw_only=True)
        # The command's `Origin`, set where `occurred_at` is (`occurring`); events stored before lack them (None).
        traceparent: str | None = field(default=None, kw_only=True)
        request_id: str | None = field(default=None, kw_only=True)
        # The clinic of the principal in `by` (a clinic's own id, a prescriber's clinic); None for the system, the
        # operator, and events stored before it was kept.
        by_clinic: str | None = field(default=None, kw_only=True)

    class Created(Event, Aggregate.Created):
        """The course was opened (named Created because the library expects that name)."""

        TOPIC = "kact.course:Opened.v1"
        home_clinic_id: str
        model: str
        protocol: dict[str, Any]
        partners: dict[str, str]
        first_dosed: str
        by: str

    class ScreeningRecorded(Event):
        TOPIC = "kact.course:ScreeningRecorded.v1"
        partner: str
        result: str
        clinician_id: str
        notes: str

        def apply(self, course: Course) -> None:
            course.screenings[self.partner] = self.result

    class SessionBooked(Event):
        TOPIC = "kact.course:SessionBooked.v1"
        session: dict[str, Any]

        def apply(self, course: Course) -> None:
            session = Session.from_data(self.session)
            if needs_confirmation(session.kind, session.clinic_id, course.home_clinic_id):
                session = replace(session, confirmation=Confirmation.PENDING)
            course.sessions[session.id] = session

    class SlotHeld(Event):
        """A slot was kept for the course until `hold["expires_at"]`."""

        TOPIC = "kact.course:SlotHeld.v1"
        hold: dict[str, Any]

        def apply(self, course: Course) -> None:
            hold = Hold.from_data(self.hold)
            course.holds = {**course.holds, hold.id: hold}

    class HoldReleased(Event):
        """A hold ended before it expired: booked (as `session_id`) or released by the clinic."""

        TOPIC = "kact.course:HoldReleased.v1"
        hold_id: str
        outcome: str  # booked | released
        session_id: str | None

        def apply(self, course: Course) -> None:
            course.holds = {k: v for k, v in course.holds.items() if k != self.hold_id}

    class HoldExpired(Event):
        TOPIC = "kact.course:HoldExpired.v1"
        hold_id: str
        expired_at: datetime

        def apply(self, course: Course) -> None:
            course.holds = {k: v for k, v in course.holds.items() if k != self.hold_id}

    class SessionRescheduled(Event):
        TOPIC = "kact.course:SessionRescheduled.v1"
        session_id: str
        starts_at: datetime
        ends_at: datetime
        room_id: str | None
        clinician_ids: list[str]
        follows: str | None
        # Why it was moved outside the host's or a clinician's hours; events stored before hours were kept lack
        # it, and it is absent (None) when nothing was overridden.
        hours_override: str | None = None

        def apply(self, course: Course) -> None:
            session = course.sessions[self.session_id]
            course.sessions[self.session_id] = replace(
                session, starts_at=self.starts_at, ends_at=self.ends_at, room_id=self.room_id,
                clinician_ids=tuple(self.clinician_ids), follows=self.follows,
                # the host is asked again for the new time
                confirmation=session.confirmation if session.confirmation is Confirmation.NOT_NEEDED
                else Confirmation.PENDING)

    class SessionConfirmed(Event):
        TOPIC = "kact.course:SessionConfirmed.v1"
        session_id: str
        clinic_id: str

        def apply(self, course: Course) -> None:
            course._replace_session(self.session_id, confirmation=Confirmation.CONFIRMED)

    class SessionDeclined(Event):
        TOPIC = "kact.course:SessionDeclined.v1"
        session_id: str
        clinic_id: str
        reason: str

        def apply(self, course: Course) -> None:
            course._replace_session(self.session_id, confirmation=Confirmation.DECLINED)

    class SessionCancelled(Event):
        TOPIC = "kact.course:SessionCancelled.v1"
        session_id: str
        reason: str  # the free-text note (health data, never on the bus); "" when none was given
        # On whose behalf and why (CancelledBy, CancelReason). Events stored before they were asked for lack them
        # and read as the API reads a request that gives only a reason: the home clinic's, for reason `other`.
        cancelled_by: str = CancelledBy.HOME_CLINIC.value
        reason_code: str = CancelReason.OTHER.value

        def apply(self, course: Course) -> None:
            course._replace_session(self.session_id, status=SessionStatus.CANCELLED, cancellation=Cancellation(
                CancelledBy(self.cancelled_by), CancelReason(self.reason_code), self.reason))

    class SessionHeld(Event):
        TOPIC = "kact.course:SessionHeld.v1"
        session_id: str
        record: dict[str, Any]

        def apply(self, course: Course) -> None:
            course._replace_session(self.session_id, status=SessionStatus.HELD, held=self.record)

    class SessionMissed(Event):
        TOPIC = "kact.course:SessionMissed.v1"
        session_id: str
        reason: str
        # Who recorded it (one of the recording clinic's clinicians); events stored before it was asked for lack
        # it, and only then is it absent from a new one.
        clinician_id: str | None = None

        def apply(self, course: Course) -> None:
            course._replace_session(self.session_id, status=SessionStatus.MISSED)

    class DoseApprovalRequested(Event):
        TOPIC = "kact.course:DoseApprovalRequested.v1"
        approval_id: str
        session_id: str
        partner: str
        prescriber_id: str
        requested_mg: float
        requested_at: datetime

        def apply(self, course: Course) -> None:
            course.approvals[self.approval_id] = DoseApproval(
                id=self.approval_id,
                session_id=self.session_id,
                partner=self.partner,
                prescriber_id=self.prescriber_id,
                requested_mg=self.requested_mg,
                requested_at=self.requested_at,
            )

    class DoseApprovalWithdrawn(Event):
        """The requesting clinic took back a dose approval request the prescriber had not decided yet."""

        TOPIC = "kact.course:DoseApprovalWithdrawn.v1"
        approval_id: str
        reason: str

        def apply(self, course: Course) -> None:
            course.approvals[self.approval_id] = replace(
                course.approvals[self.approval_id], status=ApprovalStatus.WITHDRAWN, reason=self.reason)

    class DoseApprovalDecided(Event):
        TOPIC = "kact.course:DoseApprovalDecided.v1"
        approval_id: str
        decision: str
        approved_mg: float | None
        decided_at: datetime
        expires_at: datetime | None
        reason: str
        vitals_override_reason: str | None

        def apply(self, course: Course) -> None:
            course.approvals[self.approval_id] = replace(
                course.approvals[self.approval_id], status=ApprovalStatus(self.decision),
                approved_mg=self.approved_mg, decided_at=self.decided_at, expires_at=self.expires_at,
                reason=self.reason, vitals_override_reason=self.vitals_override_reason)

    class VitalsLimitOverridden(Event):
        """The prescriber of an approved dose lifted the clinic's vitals limit (I9) for one pre-dose reading, on
        the day, up to a ceiling and with a reason."""

        TOPIC = "kact.course:VitalsLimitOverridden.v1"
        approval_id: str
        reading_at: datetime
        ceiling: dict[str, Any]  # systolic, diastolic, heart_rate (None: the clinic's heart-rate limit stands)
        reason: str
        decided_at: datetime

        def apply(self, course: Course) -> None:
            approval = course.approvals[self.approval_id]
            override = VitalsOverride(self.reading_at, self.ceiling["systolic"], self.ceiling["diastolic"],
                                      self.ceiling.get("heart_rate"), self.reason, self.decided_at)
            course.approvals[self.approval_id] = replace(
                approval, vitals_overrides=(*approval.vitals_overrides, override))

    class Assessed(Event):
        TOPIC = "kact.course:Assessed.v1"

        def apply(self, course: Course) -> None:
            course.milestones.append({"milestone": "assessed", "session_id": None, "at": self.timestamp})

    class Prepared(Event):
        TOPIC = "kact.course:Prepared.v1"

        def apply(self, course: Course) -> None:
            course.milestones.append({"milestone": "prepared", "session_id": None, "at": self.timestamp})

    class Dosed(Event):
        TOPIC = "kact.course:Dosed.v1"
        session_id: str
        integration_deadline: datetime  # when its integration window closes (I4), fixed once it is held

        def apply(self, course: Course) -> None:
            course.milestones.append({"milestone": "dosed", "session_id": self.session_id, "at": self.timestamp})

    class Integrated(Event):
        TOPIC = "kact.course:Integrated.v1"
        session_id: str

        def apply(self, course: Course) -> None:
            course.milestones.append(
                {"milestone": "integrated", "session_id": self.session_id, "at": self.timestamp}
            )

    class IntegrationWindowMissed(Event):
        TOPIC = "kact.course:IntegrationWindowMissed.v1"
        session_id: str
        deadline: datetime

        def apply(self, course: Course) -> None:
            course.missed_windows[self.session_id] = MissedWindow(self.session_id, self.deadline)

    class MissedWindowAcknowledged(Event):
        TOPIC = "kact.course:MissedWindowAcknowledged.v1"
        session_id: str
        reason: str
        # The home clinic's clinician who acknowledged it; events stored before it was asked for lack it.
        clinician_id: str | None = None

        def apply(self, course: Course) -> None:
            course.missed_windows[self.session_id] = replace(
                course.missed_windows[self.session_id], acknowledged=True, reason=self.reason,
                clinician_id=self.clinician_id)

    class AdverseEventReported(Event):
        """An adverse event of a medicine session, reported on its own (during it, or after the couple left)."""

        TOPIC = "kact.course:AdverseEventReported.v1"
        session_id: str
        partner: str
        at: datetime
        kind: str
        severity: str
        note: str
        follow_up: str
        clinician_id: str

        def apply(self, course: Course) -> None:
            course.adverse_events = [*course.adverse_events, {
                "session_id": self.session_id, "partner": self.partner, "at": self.at, "kind": self.kind,
                "severity": self.severity, "note": self.note, "follow_up": self.follow_up,
                "clinician_id": self.clinician_id, "reported_at": self.timestamp}]

    class DischargeRecorded(Event):
        """The discharge of a medicine session recorded while monitoring continued, with the readings since."""

        TOPIC = "kact.course:DischargeRecorded.v1"
        session_id: str
        discharged_at: datetime
        vitals: list[dict[str, Any]]
        ended_at: datetime | None
        clinician_id: str | None

        def apply(self, course: Course) -> None:
            held = {k: v for k, v in (course.sessions[self.session_id].held or {}).items() if k != "monitoring"}
            held.update(discharged_at=self.discharged_at, vitals=[*held.get("vitals", []), *self.vitals])
            if self.ended_at is not None:
                held["ended_at"] = self.ended_at
            course._replace_session(self.session_id, held=held)

    class Completed(Event):
        TOPIC = "kact.course:Completed.v1"

        def apply(self, course: Course) -> None:
            course.status = Status.COMPLETED

    class Discontinued(Event):
        TOPIC = "kact.course:Discontinued.v1"
        reason: str

        def apply(self, course: Course) -> None:
            course.status = Status.DISCONTINUED
            course.discontinue_reason = self.reason

    def __init__(
        self,
        home_clinic_id: str,
        model: str,
        protocol: dict[str, Any],
        partners: dict[str, str],
        first_dosed: str,
        by: str,
    ) -> None:
        self.home_clinic_id = home_clinic_id
        self.model = Model(model)
        self.protocol = Protocol.from_dict(protocol)
        self.partners = dict(partners)
        self.first_dosed = first_dosed
        self.opened_by = by
        self.status = Status.OPEN
        self.discontinue_reason: str | None = None
        self.screenings: dict[str, str] = {}
        self.sessions: dict[str, Session] = {}
        self.approvals: dict[str, DoseApproval] = {}
        self.milestones: list[dict[str, Any]] = []
        self.missed_windows: dict[str, MissedWindow] = {}
        self.holds: dict[str, Hold] = {}  # open (not booked, released or recorded expired); replaced whole
        # Adverse events reported on their own, during or after their medicine session (in order of reporting);
        # replaced whole by each report, never changed in place.
        self.adverse_events: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(
        cls,
        *,
        course_id: UUID,
        home_clinic_id: str,
        model: Model | str,
        protocol: Protocol,
        partners: dict[str, str],
        first_dosed: str = "a",
        by: str,
        now: datetime | None = None,
        origin: Origin | None = None,
    ) -> Course:
        try:
            model = Model(model)
        except ValueError:
            raise InvalidCommandError([f"model must be one of {[m.value for m in Model]}"]) from None
        protocol.check(model)
        problems = []
        if set(partners) != set(PARTNERS) or not all(str(ref).strip() for ref in partners.values()):
            problems.append("partners must give a non-empty reference for exactly 'a' and 'b'")
        if first_dosed not in PARTNERS:
            problems.append("first_dosed must be 'a' or 'b'")
        if problems:
            raise InvalidCommandError(problems)
        return cls._create(
            cls.Created,
            id=course_id,
            home_clinic_id=home_clinic_id,
            model=model.value,
            protocol=protocol.to_dict(),
            partners=dict(partners),
            first_dosed=first_dosed,
            by=by,
            occurred_at=utc(now) if now is not None else None,
            traceparent=origin.traceparent if origin is not None else None,
            request_id=origin.request_id if origin is not None else None,
            by_clinic=origin.clinic_id if origin is not None else None,
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> Course:
        """A copy that shares nothing mutable: its collections, copied (not what they hold).

        The repository hands out a deep copy of its cached course on every command; the generic deep copy walks
        every held record and dominated the cost of a command. Sessions, approvals and missed windows are
        immutable (an event replaces one whole) and records are never changed in place, so copying the
        collections is enough."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._pending_events = list(self._pending_events)
        clone.partners = dict(self.partners)
        clone.screenings = dict(self.screenings)
        clone.sessions = dict(self.sessions)
        clone.approvals = dict(self.approvals)
        clone.milestones = list(self.milestones)
        clone.missed_windows = dict(self.missed_windows)
        return clone

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        """Every event keeps when it happened: the clock of the command (`occurring`), unless it says itself; and
        where the command came from (its `Origin`)."""
        clock = self.__dict__.get("_clock")
        if clock is not None and "occurred_at" not in kwargs:
            kwargs["occurred_at"] = clock
        origin = self.__dict__.get("_origin")
        if origin is not None:
            kwargs.setdefault("traceparent", origin.traceparent)
            kwargs.setdefault("request_id", origin.request_id)
            if origin.clinic_id is not None:
                kwargs.setdefault("by_clinic", origin.clinic_id)
        super().trigger_event(event_class, **kwargs)

    def occurring(self, now: datetime | None, origin: Origin | None = None) -> None:
        """The clock of the command about to run on this course (None: the command's own, if it has one): every
        event it records says it happened then, and came from `origin`. `done` forgets both, so that they are
        never part of the course."""
        if now is None:
            self.__dict__.pop("_clock", None)
        else:
            self.__dict__["_clock"] = utc(now)
        if origin is None:
            self.__dict__.pop("_origin", None)
        else:
            self.__dict__["_origin"] = origin

    def done(self) -> None:
        self.__dict__.pop("_clock", None)
        self.__dict__.pop("_origin", None)

    def _now(self, now: datetime | None) -> datetime | None:
        """The time of the command: its own `now`, else the clock it runs `occurring` at (None: neither)."""
        return utc(now) if now is not None else self.__dict__.get("_clock")

    def _replace_session(self, session_id: str, **changes: Any) -> None:
        self.sessions[session_id] = replace(self.sessions[session_id], **changes)

    def _refuse_if(self, violations: list[Violation]) -> None:
        if violations:
            raise RulesBrokenError(violations)

    # --------------------------------------------------------------- screening

    def record_screening(self, *, partner: str, result: str, clinician_id: str, notes: str = "", by: str) -> None:
        if partner not in PARTNERS or result not in ("eligible", "ineligible"):
            raise InvalidCommandError(["partner must be 'a' or 'b' and result 'eligible' or 'ineligible'"])
        self._refuse_if(closed_violations(self) + milestones.screening_violations(self))
        self.trigger_event(
            self.ScreeningRecorded, partner=partner, result=result, clinician_id=clinician_id, notes=notes, by=by
        )
        if result == "ineligible":
            self.trigger_event(self.Discontinued, reason="ineligible", by=by)
        else:
            self._record_milestones(by)

    # ---------------------------------------------------------------- sessions

    def book_session(
        self,
        *,
        session_id: str,
        kind: Kind | str,
        partners: Iterable[str],
        starts_at: datetime,
        ends_at: datetime,
        clinic_id: str,
        room_id: str | None = None,
        clinician_ids: Iterable[str] = (),
        timezone: str = "UTC",
        host: HostFacts | None = None,
        hours_override: str | None = None,
        by: str,
        now: datetime | None = None,
    ) -> None:
        """Book a session; `hours_override` is the reason it was accepted outside hours (the application judges
        hours), kept with it. `now` (when the clinic books) refuses a session that would start in the past."""
        used = [f"session id {session_id} is already used in this course"] if session_id in self.sessions else []
        kind, partners, starts_at, ends_at, follows = self._placed(kind, partners, starts_at, ends_at, clinic_id,
                                                                   host, now, used)
        self.trigger_event(
            self.SessionBooked,
            session={
                "id": session_id,
                "kind": kind.value,
                "partners": list(partners),
                "starts_at": starts_at,
                "ends_at": ends_at,
                "clinic_id": clinic_id,
                "room_id": room_id,
                "clinician_ids": list(clinician_ids),
                "timezone": timezone,
                "follows": follows,
                **({"hours_override": hours_override} if hours_override else {}),
            },
            by=by,
        )

    def _placed(self, kind: Kind | str, partners: Iterable[str], starts_at: datetime, ends_at: datetime,
                clinic_id: str, host: HostFacts | None, now: datetime | None,
                problems: list[str]) -> tuple[Kind, tuple[str, ...], datetime, datetime, str | None]:
        """The checks of a session about to be booked (or held) there: its values, the course's state, the
        couple's calendar (I1, I2, I4, I5, I10) and its host (I11). Returns the values normalised and the
        medicine session an integration session would follow."""
        kind = parse_kind(kind)
        partners = tuple(sorted(set(partners)))
        given, problems = problems, time_problems(starts_at, ends_at)
        if not problems:
            starts_at, ends_at = utc(starts_at), utc(ends_at)
        if not partners or not set(partners) <= set(PARTNERS):
            problems.append("partners must be a non-empty subset of ['a', 'b']")
        if kind in (Kind.MEDICINE, Kind.INTEGRATION) and partners != PARTNERS:
            problems.append(f"a {kind.value} session is joint: partners must be ['a', 'b']")
        problems += given
        if problems:
            raise InvalidCommandError(problems)
        violations, follows = self.booking_violations(kind, starts_at, ends_at, clinic_id, host, now)
        self._refuse_if(violations)
        return kind, partners, starts_at, ends_at, follows

    def booking_violations(self, kind: Kind, starts_at: datetime, ends_at: datetime, clinic_id: str,
                           host: HostFacts | None, now: datetime | None) -> tuple[list[Violation], str | None]:
        """The course's rules a joint session of `kind` booked at [starts_at, ends_at) (UTC) would break (the
        course's state, I1, I2, I4, I5, I10 for the couple, I11), and the medicine session an integration session
        there would follow: what a booking checks, for the free-slot search and the planner to ask."""
        violations = closed_violations(self)
        now = self._now(now)
        if now is not None:
            violations += past_violations(starts_at, now)
        placed, follows = placement.placement_violations(self, kind, starts_at, ends_at)
        violations += placed
        violations += hosting.hosting_violations(kind, self.home_clinic_id, clinic_id, host)
        return violations, follows

    def tentatively(self, now: datetime | None) -> Course:
        """A scratch copy in which the holds still open at `now` are booked sessions (never saved): a new hold is
        judged beside them, so that the holds of a plan (a medicine session, then its integration sessions)
        are judged as the bookings they become."""
        scratch = copy.deepcopy(self)
        for held in sorted(self.holds.values(), key=lambda h: h.starts_at):
            if now is None or held.open_at(utc(now)):
                scratch.trigger_event(self.SessionBooked, session={
                    "id": held.id, "kind": held.kind.value, "partners": list(held.partners),
                    "starts_at": held.starts_at, "ends_at": held.ends_at, "clinic_id": held.clinic_id,
                    "room_id": held.room_id, "clinician_ids": list(held.clinician_ids), "timezone": held.timezone,
                    "follows": placement.placement_violations(scratch, held.kind, held.starts_at, held.ends_at)[1],
                }, by="scratch")
        return scratch

    # ------------------------------------------------------------------ holds

    def hold_slot(
        self,
        *,
        hold_id: str,
        kind: Kind | str,
        partners: Iterable[str],
        starts_at: datetime,
        ends_at: datetime,
        clinic_id: str,
        room_id: str | None = None,
        clinician_ids: Iterable[str] = (),
        timezone: str = "UTC",
        host: HostFacts | None = None,
        hours_override: str | None = None,
        expires_at: datetime,
        by: str,
        now: datetime,
    ) -> None:
        """Keep a slot for the course until `expires_at`: checked as a booking there would be, so that booking
        it (`book_hold`) before then is refused only if the course or the clinic's rules changed meanwhile."""
        problems = [f"hold id {hold_id} is already used in this course"] \
            if hold_id in self.holds or hold_id in self.sessions else []
        if utc(expires_at) <= utc(now):
            problems.append("a hold expires after it is taken")
        # Judged beside the course's open holds as if booked: the couple never holds two overlapping slots (I10),
        # and an integration session may follow a medicine session held but not booked yet.
        basis = self.tentatively(now) if self.holds else self
        kind, partners, starts_at, ends_at, _ = basis._placed(kind, partners, starts_at, ends_at, clinic_id, host,
                                                              now, problems)
        self.trigger_event(
            self.SlotHeld,
            hold={
                "id": hold_id, "kind": kind.value, "partners": list(partners), "starts_at": starts_at,
                "ends_at": ends_at, "clinic_id": clinic_id, "room_id": room_id,
                "clinician_ids": list(clinician_ids), "timezone": timezone, "expires_at": utc(expires_at),
                **({"hours_override": hours_override} if hours_override else {}),
            },
            by=by,
        )

    def hold(self, hold_id: str) -> Hold:
        try:
            return self.holds[hold_id]
        except KeyError:
            raise UnknownHoldError(hold_id) from None

    def book_hold(self, *, hold_id: str, session_id: str, host: HostFacts | None = None, by: str,
                  now: datetime) -> Hold:
        """Book the held slot as a session (the hold ends, booked); an expired hold is booked no more."""
        held = self.hold(hold_id)
        if not held.open_at(utc(now)):
            self._refuse_if([Violation("hold-expired", f"hold {hold_id} expired at {held.expires_at.isoformat()}; "
                                                       f"hold the slot again or book it directly")])
        self.book_session(session_id=session_id, kind=held.kind, partners=held.partners, starts_at=held.starts_at,
                          ends_at=held.ends_at, clinic_id=held.clinic_id, room_id=held.room_id,
                          clinician_ids=held.clinician_ids, timezone=held.timezone, host=host,
                          hours_override=held.hours_override, by=by, now=now)
        self.trigger_event(self.HoldReleased, hold_id=hold_id, outcome="booked", session_id=session_id, by=by)
        return held

    def release_hold(self, *, hold_id: str, by: str) -> Hold:
        held = self.hold(hold_id)
        self.trigger_event(self.HoldReleased, hold_id=hold_id, outcome="released", session_id=None, by=by)
        return held

    def expire_holds(self, *, now: datetime, by: str) -> list[Hold]:
        """Record the end of every hold whose time ran out by `now` (the job that watches holds)."""
        expired = [h for h in self.holds.values() if not h.open_at(utc(now))]
        for held in expired:
            self.trigger_event(self.HoldExpired, hold_id=held.id, expired_at=held.expires_at, by=by)
        return expired

    def reschedule_session(
        self,
        *,
        session_id: str,
        starts_at: datetime,
        ends_at: datetime,
        room_id: str | None = None,
        clinician_ids: Iterable[str] | None = None,
        host: HostFacts | None = None,
        hours_override: str | None = None,
        by: str,
        now: datetime | None = None,
        new_approval_id: Callable[[], str] | None = None,
    ) -> None:
        """Move a booked session. A medicine session moved past the expiry of a partner's approved dose asks its
        prescriber again (`new_approval_id` names the new request; `now` is when it is asked)."""
        session = self.session(session_id)
        problems = time_problems(starts_at, ends_at)
        if problems:
            raise InvalidCommandError(problems)
        starts_at, ends_at = utc(starts_at), utc(ends_at)
        violations = closed_violations(self) + booked_violations(session)
        now = self._now(now)
        if now is not None and not violations:  # a session that started took place or did not: held or missed
            violations += started_violations(session, now) or past_violations(starts_at, now)
        placed, follows = placement.placement_violations(self, session.kind, starts_at, ends_at, ignore=session.id)
        violations += placed
        if host is not None:  # moved, a session hosted away still needs its host's partnership (I11)
            violations += hosting.hosting_violations(session.kind, self.home_clinic_id, session.clinic_id, host)
        if session.kind is Kind.MEDICINE:
            violations += placement.moved_medicine_violations(self, session, starts_at, ends_at)
        if session.kind is Kind.INTEGRATION and session.follows and follows != session.follows:
            violations += placement.left_window_violations(self, session)
        self._refuse_if(violations)
        self.trigger_event(
            self.SessionRescheduled,
            session_id=session_id,
            starts_at=starts_at,
            ends_at=ends_at,
            room_id=room_id if room_id is not None else session.room_id,
            clinician_ids=list(clinician_ids) if clinician_ids is not None else list(session.clinician_ids),
            follows=follows if session.kind is Kind.INTEGRATION else session.follows,
            by=by,
            **({"hours_override": hours_override} if hours_override else {}),
        )
        if session.kind is Kind.MEDICINE and new_approval_id is not None and now is not None:
            self._ask_again_after_expiry(self.sessions[session_id], now, new_approval_id, by)

    def _ask_again_after_expiry(self, session: Session, now: datetime, new_approval_id: Callable[[], str],
                                by: str) -> None:
        """Each partner whose approved dose for the session expires before it now starts, and who has no other
        request standing, is asked for again: the same prescriber, the same amount (I6)."""
        for partner in PARTNERS:
            lapsed = [a for a in self.approvals.values() if a.session_id == session.id and a.partner == partner
                      and a.status is ApprovalStatus.APPROVED and a.expires_at is not None
                      and a.expires_at < session.starts_at]
            if lapsed and not dosing.standing_approvals(self, session, partner, now):
                previous = max(lapsed, key=lambda a: a.requested_at)
                self.trigger_event(self.DoseApprovalRequested, approval_id=new_approval_id(), session_id=session.id,
                                   partner=partner, prescriber_id=previous.prescriber_id,
                                   requested_mg=previous.requested_mg, requested_at=now, by=by)

    def confirm_session(
        self, *, session_id: str, clinic_id: str, decision: str, reason: str = "", by: str
    ) -> None:
        """The clinic hosting a medicine session for another (home) clinic confirms or declines it."""
        session = self.session(session_id)
        if session.clinic_id != clinic_id:
            raise NotHostingError(session_id, clinic_id)
        problems = []
        if decision not in (Confirmation.CONFIRMED, Confirmation.DECLINED):
            problems.append("decision must be 'confirmed' or 'declined'")
        elif decision == Confirmation.DECLINED and not reason.strip():
            problems.append("declining a session gives a reason")
        if problems:
            raise InvalidCommandError(problems)
        decided = Confirmation(decision)
        self._refuse_if(
            closed_violations(self) + booked_violations(session) + hosting.confirmation_violations(session, decided)
        )
        if decided is Confirmation.CONFIRMED:
            self.trigger_event(self.SessionConfirmed, session_id=session_id, clinic_id=clinic_id, by=by)
        else:
            self.trigger_event(self.SessionDeclined, session_id=session_id, clinic_id=clinic_id, reason=reason, by=by)

    def cancel_session(
        self,
        *,
        session_id: str,
        by: str,
        cancelled_by: CancelledBy | str = CancelledBy.HOME_CLINIC,
        reason_code: CancelReason | str = CancelReason.OTHER,
        note: str = "",
        reason: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Cancel a booked session before it starts (`now`: when the clinic cancels; without it, as of old, at
        any time), on whose behalf (`cancelled_by`) and why (`reason_code`; `other` needs a `note`). `reason` is
        the free text of callers from before the classification: the note, given instead of `note`."""
        if reason is not None:
            if note:
                raise InvalidCommandError(["give the note, or the older reason, not both"])
            note = reason
        cancellation = parse_cancellation(cancelled_by, reason_code, note)
        session, now = self.session(session_id), self._now(now)
        started = started_violations(session, now) if now is not None else []
        self._refuse_if(closed_violations(self) + booked_violations(session) + started)
        self.trigger_event(self.SessionCancelled, session_id=session_id, reason=cancellation.note,
                           cancelled_by=cancellation.cancelled_by.value,
                           reason_code=cancellation.reason_code.value, by=by)

    def record_missed(self, *, session_id: str, reason: str, now: datetime, by: str,
                      clinician_id: str | None = None) -> None:
        session, now = self.session(session_id), utc(now)
        self._refuse_if(closed_violations(self) + booked_violations(session) + not_started_violations(session, now)
                        + hosting.missed_violations(session))
        attributed = {"clinician_id": clinician_id} if clinician_id else {}
        self.trigger_event(self.SessionMissed, session_id=session_id, reason=reason, by=by, **attributed)

    def record_held(
        self,
        *,
        session_id: str,
        now: datetime,
        notes: str = "",
        doses: list[dict[str, Any]] | None = None,
        vitals: list[dict[str, Any]] | None = None,
        adverse_events: list[dict[str, Any]] | None = None,
        discharged_at: datetime | None = None,
        ended_at: datetime | None = None,
        monitoring_continues: bool = False,
        not_dosed: str | None = None,
        by: str,
        clinician_id: str | None = None,
    ) -> None:
        """The session took place (`ended_at`: when it actually ended, if the clinic says; a medicine session's
        record otherwise ends with its discharge). `monitoring_continues`: a medicine session is recorded with its
        doses, vitals and adverse events while the couple is still watched; its discharge comes later
        (`record_discharge`), and until then the course does not move on. `not_dosed`: why a medicine session took
        place without a dose (its pre-dose vitals kept); it is not Dosed, does not count against the protocol's
        medicine sessions, and its approved doses stay usable at the next medicine session until they expire."""
        session = self.session(session_id)
        doses, vitals, adverse_events = doses or [], vitals or [], adverse_events or []
        if session.kind is not Kind.MEDICINE and (doses or vitals or adverse_events or discharged_at
                                                  or monitoring_continues or not_dosed is not None):
            raise InvalidCommandError(["doses, vitals, adverse events, discharge and not dosed belong to medicine "
                                       "sessions"])
        if monitoring_continues and (discharged_at is not None or ended_at is not None):
            raise InvalidCommandError(["while monitoring continues, the discharge and the end are recorded later"])
        if not_dosed is not None and not not_dosed.strip():
            raise InvalidCommandError(["a medicine session not dosed gives the reason"])
        if not_dosed is not None and (doses or discharged_at is not None or monitoring_continues):
            raise InvalidCommandError(["a medicine session not dosed records no dose, no discharge and no continued "
                                       "monitoring"])
        monitoring.check_record_shape(doses, vitals, adverse_events)
        now = utc(now)
        doses = [{**d, "at": utc(d["at"])} for d in doses]
        vitals = [{**v, "at": utc(v["at"])} for v in vitals]
        adverse_events = [{**a, "at": utc(a["at"])} for a in adverse_events]
        discharged_at = utc(discharged_at) if discharged_at is not None else None
        ended_at = utc(ended_at) if ended_at is not None else None
        recorded_times = [x["at"] for x in (*doses, *vitals, *adverse_events)] + [
            at for at in (discharged_at, ended_at) if at is not None]
        if any(at > now for at in recorded_times):
            raise InvalidCommandError(
                ["doses, vitals, adverse events, discharge and the end cannot be recorded in the future"])
        if ended_at is not None and ended_at <= session.starts_at:
            raise InvalidCommandError([f"session {session_id} cannot end ({ended_at.isoformat()}) before it started "
                                       f"({session.starts_at.isoformat()})"])
        violations = closed_violations(self) + booked_violations(session) + not_started_violations(session, now)
        violations += milestones.held_out_of_order(self, session) + hosting.held_violations(session)
        if session.kind is Kind.MEDICINE and not_dosed is None:
            violations += self._medicine_record_violations(session, doses, vitals, adverse_events, discharged_at,
                                                           ended_at, now, monitoring_continues)
        else:  # no dose: what it records still took place within it (I8), and the couple's time (I10)
            if session.kind is Kind.MEDICINE:
                violations += dosing.awaiting_discharge_violations(self, session)
            violations += monitoring.span_violations(self, session, [], vitals, adverse_events, None, ended_at)
            violations += placement.discharge_clash_violations(self, session, None, ended_at)
        self._refuse_if(violations)
        record: dict[str, Any] = {"notes": notes}
        if clinician_id:  # who recorded it: one of the recording clinic's clinicians
            record["clinician_id"] = clinician_id
        if ended_at is not None:
            record["ended_at"] = ended_at
        if session.kind is Kind.MEDICINE:
            record.update(doses=doses, vitals=vitals, adverse_events=adverse_events, discharged_at=discharged_at)
        if monitoring_continues:
            record["monitoring"] = "continues"
        if not_dosed is not None:
            record["not_dosed"] = not_dosed
        self.trigger_event(self.SessionHeld, session_id=session_id, record=record, by=by)
        if session.kind is Kind.MEDICINE and not monitoring_continues and not_dosed is None:
            self.trigger_event(
                self.Dosed, session_id=session_id, integration_deadline=self.window_deadline(self.sessions[session_id]),
                by=by,
            )
        self._record_milestones(by)

    def _medicine_record_violations(
        self,
        session: Session,
        doses: list[dict[str, Any]],
        vitals: list[dict[str, Any]],
        adverse_events: list[dict[str, Any]],
        discharged_at: datetime | None,
        ended_at: datetime | None,
        now: datetime,
        awaiting_discharge: bool = False,
    ) -> list[Violation]:
        """I3, I4 and I7 for the session as the next dose, I8 for when what it records took place, then I6, I8
        and I9 dose by dose, then I10 to its end (while monitoring continues, the discharge is judged later)."""
        violations = dosing.next_dose_violations(self, session, now, doses) + dosing.turn_violations(self, doses)
        violations += dosing.absent_approval_violations(self, session, doses)
        violations += monitoring.span_violations(self, session, doses, vitals, adverse_events, discharged_at,
                                                 now if awaiting_discharge else ended_at)
        by_partner: dict[str, list[dict[str, Any]]] = {}
        for dose in sorted(doses, key=lambda d: d["at"]):  # a partner's administrations, in the order given
            by_partner.setdefault(dose["partner"], []).append(dose)
        for partner in sorted(by_partner):
            given = by_partner[partner]
            violations += dosing.approval_violations(self, session, given)
            violations += monitoring.vitals_violations(self, given[0], vitals, discharged_at, given[-1]["at"],
                                                       awaiting_discharge)
        return violations + placement.discharge_clash_violations(self, session, discharged_at, ended_at)

    # ----------------------------------------------------------- dose approvals

    def request_dose_approval(
        self,
        *,
        approval_id: str,
        session_id: str,
        partner: str,
        prescriber_id: str,
        requested_mg: float,
        prescriber_authorised: bool,
        now: datetime,
        by: str,
    ) -> None:
        session, now = self.session(session_id), utc(now)
        problems = []
        if partner not in PARTNERS:
            problems.append("partner must be 'a' or 'b'")
        if not requested_mg > 0:
            problems.append("requested_mg must be positive")
        if approval_id in self.approvals:
            problems.append(f"approval id {approval_id} is already used in this course")
        if problems:
            raise InvalidCommandError(problems)
        self._refuse_if(
            closed_violations(self)
            + booked_violations(session)
            + dosing.request_violations(self, session, partner, prescriber_id, prescriber_authorised, now)
        )
        self.trigger_event(
            self.DoseApprovalRequested,
            approval_id=approval_id,
            session_id=session_id,
            partner=partner,
            prescriber_id=prescriber_id,
            requested_mg=float(requested_mg),
            requested_at=now,
            by=by,
        )

    def withdraw_dose_approval(self, *, approval_id: str, reason: str, by: str) -> None:
        """The home clinic takes back a request its prescriber has not decided (the session moved, or the dose is
        no longer wanted); the partner's dose may be requested again."""
        approval = self.approval(approval_id)
        if not reason.strip():
            raise InvalidCommandError(["withdrawing a request gives a reason"])
        self._refuse_if(closed_violations(self) + dosing.decision_violations(approval))
        self.trigger_event(self.DoseApprovalWithdrawn, approval_id=approval_id, reason=reason, by=by)

    def decide_dose_approval(
        self,
        *,
        approval_id: str,
        prescriber_id: str,
        approve: bool,
        now: datetime,
        approved_mg: float | None = None,
        reason: str = "",
        by: str,
    ) -> None:
        approval, now = self.approval(approval_id), utc(now)
        if approval.prescriber_id != prescriber_id:
            raise NotAddressedError(approval_id)
        if approve:
            approved_mg = approval.requested_mg if approved_mg is None else approved_mg
            if not 0 < approved_mg <= approval.requested_mg:
                raise InvalidCommandError([f"approved_mg must be in (0, {approval.requested_mg}]"])
        self._refuse_if(closed_violations(self) + dosing.decision_violations(approval))
        valid = timedelta(days=self.protocol.approval_valid_days)
        self.trigger_event(
            self.DoseApprovalDecided,
            approval_id=approval_id,
            decision=(ApprovalStatus.APPROVED if approve else ApprovalStatus.DECLINED).value,
            approved_mg=float(approved_mg) if approve and approved_mg is not None else None,
            decided_at=now,
            expires_at=now + valid if approve else None,
            reason=reason,
            vitals_override_reason=None,  # per reading now (override_vitals_limit); kept by older decisions
            by=by,
        )

    def override_vitals_limit(self, *, approval_id: str, prescriber_id: str, reading_at: datetime, systolic: int,
                              diastolic: int, heart_rate: int | None = None, reason: str, now: datetime,
                              by: str) -> None:
        """The prescriber of an approved dose, on the day, lets one pre-dose reading above the clinic's numeric
        limit stand (I9), up to a ceiling, with a reason: the dose may be given after that reading."""
        approval, now, reading_at = self.approval(approval_id), utc(now), utc(reading_at)
        if approval.prescriber_id != prescriber_id:
            raise NotAddressedError(approval_id)
        problems = []
        if not reason.strip():
            problems.append("an override gives the prescriber's reason")
        if reading_at > now:
            problems.append("a reading is overridden once it was taken")
        if not (systolic > 0 and diastolic > 0 and (heart_rate is None or heart_rate > 0)):
            problems.append("the ceiling's values are positive")
        if problems:
            raise InvalidCommandError(problems)
        self._refuse_if(closed_violations(self) + monitoring.override_violations(self, approval, reading_at, now))
        self.trigger_event(self.VitalsLimitOverridden, approval_id=approval_id, reading_at=reading_at,
                           ceiling={"systolic": systolic, "diastolic": diastolic, "heart_rate": heart_rate},
                           reason=reason, decided_at=now, by=by)

    # ------------------------------------------------------- integration window

    def record_missed_integration_windows(self, *, now: datetime, by: str) -> list[str]:
        """Record every integration window that closed without an integration session held in it (I4)."""
        now = utc(now)
        if self.closed:
            return []
        missed = []
        for medicine in self.dosed_sessions():
            deadline = self.window_deadline(medicine)
            if medicine.id in self.missed_windows or now <= deadline or self.integration_in_window(medicine):
                continue
            self.trigger_event(self.IntegrationWindowMissed, session_id=medicine.id, deadline=deadline, by=by)
            missed.append(medicine.id)
        return missed

    def acknowledge_missed_window(self, *, session_id: str, reason: str, by: str, clinician_id: str | None = None,
                                  now: datetime | None = None) -> None:
        """A clinician of the home clinic acknowledges a missed integration window, with a reason (I4). A window
        that closed by the course's own times is missed whether or not the deadline watcher recorded it yet: it is
        recorded first (a course is never stuck because the watcher is off)."""
        session = self.session(session_id)
        if not reason.strip():
            raise InvalidCommandError(["an acknowledgement gives a reason"])
        window = self.missed_windows.get(session_id)
        closed_by_time = (
            window is None and now is not None and self.has_milestone("dosed", session_id)
            and utc(now) > self.window_deadline(session) and not self.integration_in_window(session))
        violations = closed_violations(self)
        if window is None and not closed_by_time:
            violations.append(Violation("I4", f"no missed integration window is recorded for session {session_id}"))
        elif window is not None and window.acknowledged:
            violations.append(Violation("I4", f"the missed window of session {session_id} is already acknowledged"))
        self._refuse_if(violations)
        if closed_by_time:
            self.trigger_event(self.IntegrationWindowMissed, session_id=session_id,
                               deadline=self.window_deadline(session), by=by)
        attributed = {"clinician_id": clinician_id} if clinician_id else {}
        self.trigger_event(self.MissedWindowAcknowledged, session_id=session_id, reason=reason, by=by, **attributed)

    def record_discharge(self, *, session_id: str, discharged_at: datetime, vitals: list[dict[str, Any]] | None = None,
                         ended_at: datetime | None = None, now: datetime, by: str,
                         clinician_id: str | None = None) -> None:
        """The discharge of a medicine session recorded while monitoring continued, with the readings taken since
        (at least an acceptable one at discharge): I8 as for a discharge recorded at once; then the session is
        Dosed, and its integration window counts from the discharge (or the recorded end)."""
        session, now = self.session(session_id), utc(now)
        vitals = vitals or []
        monitoring.check_record_shape([], vitals, [])
        vitals = [{**v, "at": utc(v["at"])} for v in vitals]
        discharged_at = utc(discharged_at)
        ended_at = utc(ended_at) if ended_at is not None else None
        if any(at > now for at in [discharged_at, *(v["at"] for v in vitals), *([ended_at] if ended_at else [])]):
            raise InvalidCommandError(["the discharge, its readings and the end cannot be recorded in the future"])
        violations = closed_violations(self)
        if not session.awaiting_discharge:
            violations.append(Violation("session-state", f"session {session_id} is not awaiting its discharge"))
            self._refuse_if(violations)
        held = session.held or {}
        doses, readings = held.get("doses", []), [*held.get("vitals", []), *vitals]
        violations += monitoring.span_violations(self, session, [], vitals, [], discharged_at, ended_at)
        violations += monitoring.discharge_violations(self, doses, readings, discharged_at)
        violations += placement.discharge_clash_violations(self, session, discharged_at, ended_at)
        self._refuse_if(violations)
        self.trigger_event(self.DischargeRecorded, session_id=session_id, discharged_at=discharged_at, vitals=vitals,
                           ended_at=ended_at, clinician_id=clinician_id, by=by)
        self.trigger_event(self.Dosed, session_id=session_id,
                           integration_deadline=self.window_deadline(self.sessions[session_id]), by=by)
        self._record_milestones(by)

    # ---------------------------------------------------------- adverse events

    def report_adverse_event(self, *, session_id: str, partner: str, at: datetime, kind: str, severity: str,
                             note: str = "", follow_up: str = "", clinician_id: str, now: datetime, by: str) -> None:
        """An adverse event of a medicine session, on its own: at any time once the session started, while it runs
        or after the couple left (it is never dated before the session, nor in the future)."""
        session, now = self.session(session_id), utc(now)
        problems = []
        if session.kind is not Kind.MEDICINE:
            problems.append("adverse events belong to medicine sessions")
        if partner not in PARTNERS:
            problems.append("partner must be 'a' or 'b'")
        if severity not in ("mild", "moderate", "severe"):
            problems.append("severity must be mild, moderate or severe")
        if not kind.strip():
            problems.append("an adverse event names its kind")
        if problems:
            raise InvalidCommandError(problems)
        at = utc(at)
        if at > now:
            raise InvalidCommandError(["an adverse event cannot be reported before it happened"])
        violations = closed_violations(self) + not_started_violations(session, now)
        if session.status not in (SessionStatus.BOOKED, SessionStatus.HELD):
            violations.append(Violation("session-state", f"session {session_id} is {session.status.value}: it did "
                                                         "not take place"))
        violations += monitoring.span_violations(self, session, [], [], [
            {"partner": partner, "at": at}], None, None)
        self._refuse_if(violations)
        self.trigger_event(self.AdverseEventReported, session_id=session_id, partner=partner, at=at, kind=kind,
                           severity=severity, note=note, follow_up=follow_up, clinician_id=clinician_id, by=by)

    # ------------------------------------------------------------- milestones

    def _record_milestones(self, by: str) -> None:
        if self.closed:
            return
        if not self.assessed and milestones.assessment_done(self):
            self.trigger_event(self.Assessed, by=by)
        if self.assessed and not self.prepared and milestones.preparation_done(self):
            self.trigger_event(self.Prepared, by=by)
        for medicine in milestones.newly_integrated(self):
            self.trigger_event(self.Integrated, session_id=medicine.id, by=by)

    # ---------------------------------------------------------------- closing

    def complete(self, *, by: str) -> None:
        self._refuse_if(self.completion_violations())
        self._release_holds(by)
        self.trigger_event(self.Completed, by=by)

    def discontinue(self, *, reason: str, by: str) -> None:
        if not reason.strip():
            raise InvalidCommandError(["discontinuing gives a reason"])
        self._refuse_if(closed_violations(self))
        self._release_holds(by)
        self.trigger_event(self.Discontinued, reason=reason, by=by)

    def _release_holds(self, by: str) -> None:
        """A course that closes keeps no slot."""
        for hold_id in list(self.holds):
            self.trigger_event(self.HoldReleased, hold_id=hold_id, outcome="released", session_id=None, by=by)
