"""A couple's course: the event-sourced aggregate that enforces invariants I1-I9 and the couple part of I10."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from scheduler.domain.errors import (
    InvalidCommandError,
    NotAddressedError,
    NotHostingError,
    RulesBrokenError,
    UnknownApprovalError,
    UnknownSessionError,
    Violation,
)
from scheduler.domain.protocol import Model, Protocol

PARTNERS = ("a", "b")
POST_DOSE_VITALS_FROM = timedelta(minutes=30)  # "about 40 min after" the dose (I8)
POST_DOSE_VITALS_UNTIL = timedelta(minutes=60)


class Kind(StrEnum):
    ASSESSMENT = "assessment"
    PREPARATION = "preparation"
    MEDICINE = "medicine"
    INTEGRATION = "integration"


class SessionStatus(StrEnum):
    BOOKED = "booked"
    HELD = "held"
    MISSED = "missed"
    CANCELLED = "cancelled"


class Status(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    DISCONTINUED = "discontinued"


class Phase(StrEnum):
    ASSESSMENT = "assessment"
    PREPARATION = "preparation"
    MEDICINE = "medicine"
    COMPLETED = "completed"
    DISCONTINUED = "discontinued"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class Confirmation(StrEnum):
    """Whether the clinic hosting a session agreed to it (a medicine session at a partner clinic)."""

    NOT_NEEDED = "not_needed"  # hosted at the home clinic
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DECLINED = "declined"


class Stage(StrEnum):
    PRE = "pre"
    POST = "post"
    DISCHARGE = "discharge"


@dataclass(frozen=True)
class HostFacts:
    """What the directory knows about the clinic that hosts a medicine session (I11)."""

    clinic_id: str
    has_prescriber: bool
    is_partner_of_home: bool


@dataclass
class Session:
    id: str
    kind: Kind
    partners: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    clinic_id: str
    room_id: str | None
    clinician_ids: tuple[str, ...]
    timezone: str
    status: SessionStatus = SessionStatus.BOOKED
    follows: str | None = None  # integration: the medicine session it integrates
    held: dict[str, Any] | None = None
    confirmation: Confirmation = Confirmation.NOT_NEEDED

    @property
    def active(self) -> bool:
        return self.status in (SessionStatus.BOOKED, SessionStatus.HELD)

    @property
    def is_joint(self) -> bool:
        return set(self.partners) == set(PARTNERS)

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        return self.starts_at < ends_at and starts_at < self.occupied_until

    @property
    def occupied_until(self) -> datetime:
        """The couple is in the session until its booked end, or until discharge if that came later (I10)."""
        discharged = self.held.get("discharged_at") if self.held else None
        return max(self.ends_at, discharged) if discharged else self.ends_at

    @property
    def finished_at(self) -> datetime:
        """When a medicine session ended: discharge if held, else the booked end."""
        if self.held and self.held.get("discharged_at"):
            return self.held["discharged_at"]
        return self.ends_at


@dataclass
class DoseApproval:
    id: str
    session_id: str
    partner: str
    prescriber_id: str
    requested_mg: float
    requested_at: datetime
    status: ApprovalStatus = ApprovalStatus.PENDING
    approved_mg: float | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    reason: str | None = None
    vitals_override_reason: str | None = None


@dataclass
class MissedWindow:
    session_id: str
    deadline: datetime
    acknowledged: bool = False
    reason: str | None = None


def needs_confirmation(kind: Kind | str, clinic_id: str, home_clinic_id: str) -> bool:
    """A medicine session hosted by a clinic other than the home clinic waits for the host to confirm it."""
    return Kind(kind) is Kind.MEDICINE and clinic_id != home_clinic_id


def _session_from_data(data: dict[str, Any]) -> Session:
    return Session(
        id=data["id"],
        kind=Kind(data["kind"]),
        partners=tuple(data["partners"]),
        starts_at=data["starts_at"],
        ends_at=data["ends_at"],
        clinic_id=data["clinic_id"],
        room_id=data.get("room_id"),
        clinician_ids=tuple(data.get("clinician_ids", ())),
        timezone=data.get("timezone", "UTC"),
        follows=data.get("follows"),
    )


class Course(Aggregate):
    """One couple's course: assessment, preparation, medicine and integration, as one event stream."""

    TOPIC = "kact.course:Course"

    class Event(Aggregate.Event):
        by: str

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
            session = _session_from_data(self.session)
            if needs_confirmation(session.kind, session.clinic_id, course.home_clinic_id):
                session.confirmation = Confirmation.PENDING
            course.sessions[session.id] = session

    class SessionRescheduled(Event):
        TOPIC = "kact.course:SessionRescheduled.v1"
        session_id: str
        starts_at: datetime
        ends_at: datetime
        room_id: str | None
        clinician_ids: list[str]
        follows: str | None

        def apply(self, course: Course) -> None:
            session = course.sessions[self.session_id]
            session.starts_at = self.starts_at
            session.ends_at = self.ends_at
            session.room_id = self.room_id
            session.clinician_ids = tuple(self.clinician_ids)
            session.follows = self.follows
            if session.confirmation is not Confirmation.NOT_NEEDED:
                session.confirmation = Confirmation.PENDING  # the host is asked again for the new time

    class SessionConfirmed(Event):
        TOPIC = "kact.course:SessionConfirmed.v1"
        session_id: str
        clinic_id: str

        def apply(self, course: Course) -> None:
            course.sessions[self.session_id].confirmation = Confirmation.CONFIRMED

    class SessionDeclined(Event):
        TOPIC = "kact.course:SessionDeclined.v1"
        session_id: str
        clinic_id: str
        reason: str

        def apply(self, course: Course) -> None:
            course.sessions[self.session_id].confirmation = Confirmation.DECLINED

    class SessionCancelled(Event):
        TOPIC = "kact.course:SessionCancelled.v1"
        session_id: str
        reason: str

        def apply(self, course: Course) -> None:
            course.sessions[self.session_id].status = SessionStatus.CANCELLED

    class SessionHeld(Event):
        TOPIC = "kact.course:SessionHeld.v1"
        session_id: str
        record: dict[str, Any]

        def apply(self, course: Course) -> None:
            session = course.sessions[self.session_id]
            session.status = SessionStatus.HELD
            session.held = self.record

    class SessionMissed(Event):
        TOPIC = "kact.course:SessionMissed.v1"
        session_id: str
        reason: str

        def apply(self, course: Course) -> None:
            course.sessions[self.session_id].status = SessionStatus.MISSED

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
            approval = course.approvals[self.approval_id]
            approval.status = ApprovalStatus(self.decision)
            approval.approved_mg = self.approved_mg
            approval.decided_at = self.decided_at
            approval.expires_at = self.expires_at
            approval.reason = self.reason
            approval.vitals_override_reason = self.vitals_override_reason

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

        def apply(self, course: Course) -> None:
            window = course.missed_windows[self.session_id]
            window.acknowledged = True
            window.reason = self.reason

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
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> Course:
        """A copy that shares nothing mutable, made one level deep.

        The repository hands out a deep copy of its cached course on every command; the generic deep copy walks
        every held record and dominated the cost of a command. Events replace entity fields and records whole and
        never mutate them in place, so copying each entity object is enough."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._pending_events = list(self._pending_events)
        clone.partners = dict(self.partners)
        clone.screenings = dict(self.screenings)
        clone.sessions = {k: copy.copy(v) for k, v in self.sessions.items()}
        clone.approvals = {k: copy.copy(v) for k, v in self.approvals.items()}
        clone.milestones = list(self.milestones)
        clone.missed_windows = {k: copy.copy(v) for k, v in self.missed_windows.items()}
        return clone

    # ------------------------------------------------------------- derived state

    @property
    def closed(self) -> bool:
        return self.status is not Status.OPEN

    def has_milestone(self, milestone: str, session_id: str | None = None) -> bool:
        return any(m["milestone"] == milestone and m["session_id"] == session_id for m in self.milestones)

    @property
    def assessed(self) -> bool:
        return self.has_milestone("assessed")

    @property
    def prepared(self) -> bool:
        return self.has_milestone("prepared")

    @property
    def phase(self) -> Phase:
        if self.status is Status.COMPLETED:
            return Phase.COMPLETED
        if self.status is Status.DISCONTINUED:
            return Phase.DISCONTINUED
        if not self.assessed:
            return Phase.ASSESSMENT
        if not self.prepared:
            return Phase.PREPARATION
        return Phase.MEDICINE

    def session(self, session_id: str) -> Session:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise UnknownSessionError(session_id) from None

    def approval(self, approval_id: str) -> DoseApproval:
        try:
            return self.approvals[approval_id]
        except KeyError:
            raise UnknownApprovalError(approval_id) from None

    def _sessions(self, kind: Kind, *statuses: SessionStatus) -> list[Session]:
        found = [s for s in self.sessions.values() if s.kind is kind and (not statuses or s.status in statuses)]
        return sorted(found, key=lambda s: s.starts_at)

    def dosed_sessions(self) -> list[Session]:
        """Medicine sessions held with doses, in the order they were held (their Dosed milestones)."""
        ids = [m["session_id"] for m in self.milestones if m["milestone"] == "dosed"]
        return [self.sessions[i] for i in ids]

    def dosed_partners(self, session: Session) -> set[str]:
        return {d["partner"] for d in (session.held or {}).get("doses", [])}

    def integration_held_after(self, medicine_id: str) -> list[Session]:
        return [s for s in self._sessions(Kind.INTEGRATION, SessionStatus.HELD) if s.follows == medicine_id]

    def expected_dosed(self, index: int) -> set[str]:
        """Who is dosed at the medicine session with this index (0-based, in dosing order) (I7)."""
        if self.model is Model.TOGETHER:
            return set(PARTNERS)
        other = "b" if self.first_dosed == "a" else "a"
        return {self.first_dosed if index % 2 == 0 else other}

    def window_deadline(self, medicine: Session) -> datetime:
        return medicine.finished_at + timedelta(hours=self.protocol.integration_window_hours)

    def integration_in_window(self, medicine: Session) -> bool:
        deadline = self.window_deadline(medicine)
        return any(s.starts_at <= deadline for s in self.integration_held_after(medicine.id))

    # ------------------------------------------------------------- shared checks

    def _closed_violations(self) -> list[Violation]:
        if self.closed:
            return [Violation("course-closed", f"the course is {self.status.value} and accepts no more commands")]
        return []

    def _refuse_if(self, violations: list[Violation]) -> None:
        if violations:
            raise RulesBrokenError(violations)

    def _calendar_violations(
        self,
        kind: Kind,
        starts_at: datetime,
        ends_at: datetime,
        ignore: str | None = None,
    ) -> tuple[list[Violation], str | None]:
        """I2, I4 (booking), I5 and I10 (couple) for a session placed at [starts_at, ends_at)."""
        violations = []
        others = [s for s in self.sessions.values() if s.active and s.id != ignore]
        clash = [s for s in others if s.overlaps(starts_at, ends_at)]
        if clash:
            violations.append(
                Violation("I10", f"the couple already has session {clash[0].id} overlapping {starts_at.isoformat()}")
            )
        follows = None
        if kind is Kind.MEDICINE:
            medicine = [s for s in others if s.kind is Kind.MEDICINE]
            if len(medicine) >= self.protocol.max_medicine_sessions:
                violations.append(
                    Violation(
                        "I2",
                        f"the protocol allows at most {self.protocol.max_medicine_sessions} medicine sessions",
                    )
                )
            interval = timedelta(days=self.protocol.min_medicine_interval_days)
            too_close = [s for s in medicine if abs(s.starts_at - starts_at) < interval]
            if too_close:
                violations.append(
                    Violation(
                        "I5",
                        f"medicine sessions must start at least {self.protocol.min_medicine_interval_days} days "
                        f"apart; session {too_close[0].id} starts {too_close[0].starts_at.isoformat()}",
                    )
                )
        if kind is Kind.INTEGRATION:
            before = [s for s in others if s.kind is Kind.MEDICINE and s.starts_at < starts_at]
            if not before:
                violations.append(Violation("I1", "an integration session must follow a medicine session"))
            else:
                medicine = max(before, key=lambda s: s.starts_at)
                follows = medicine.id
                if starts_at < medicine.finished_at:
                    violations.append(
                        Violation("I1", f"an integration session cannot start before medicine session {medicine.id} ends")
                    )
                # After this change, the earliest integration session of that medicine session opens the window.
                first = min(
                    [s.starts_at for s in others if s.kind is Kind.INTEGRATION and s.follows == medicine.id]
                    + [starts_at]
                )
                deadline = self.window_deadline(medicine)
                # Once a missed window is recorded, late integration sessions are the way back, not a breach.
                if first > deadline and medicine.id not in self.missed_windows:
                    violations.append(
                        Violation(
                            "I4",
                            f"the first integration session after medicine session {medicine.id} must start by "
                            f"{deadline.isoformat()} ({self.protocol.integration_window_hours} h after it ends)",
                        )
                    )
        return violations, follows

    # --------------------------------------------------------------- screening

    def record_screening(self, *, partner: str, result: str, clinician_id: str, notes: str = "", by: str) -> None:
        if partner not in PARTNERS or result not in ("eligible", "ineligible"):
            raise InvalidCommandError(["partner must be 'a' or 'b' and result 'eligible' or 'ineligible'"])
        violations = self._closed_violations()
        if self.assessed:
            violations.append(Violation("I1", "screening belongs to assessment, which is already complete"))
        self._refuse_if(violations)
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
        by: str,
    ) -> None:
        kind = _parse_kind(kind)
        partners = tuple(sorted(set(partners)))
        problems = _time_problems(starts_at, ends_at)
        if not problems:
            starts_at, ends_at = _utc(starts_at), _utc(ends_at)
        if not partners or not set(partners) <= set(PARTNERS):
            problems.append("partners must be a non-empty subset of ['a', 'b']")
        if kind in (Kind.MEDICINE, Kind.INTEGRATION) and partners != PARTNERS:
            problems.append(f"a {kind.value} session is joint: partners must be ['a', 'b']")
        if session_id in self.sessions:
            problems.append(f"session id {session_id} is already used in this course")
        if problems:
            raise InvalidCommandError(problems)
        violations = self._closed_violations()
        calendar, follows = self._calendar_violations(kind, starts_at, ends_at)
        violations += calendar
        if kind is Kind.MEDICINE:
            violations += _hosting_violations(self.home_clinic_id, clinic_id, host)
        self._refuse_if(violations)
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
            },
            by=by,
        )

    def reschedule_session(
        self,
        *,
        session_id: str,
        starts_at: datetime,
        ends_at: datetime,
        room_id: str | None = None,
        clinician_ids: Iterable[str] | None = None,
        by: str,
    ) -> None:
        session = self.session(session_id)
        problems = _time_problems(starts_at, ends_at)
        if problems:
            raise InvalidCommandError(problems)
        starts_at, ends_at = _utc(starts_at), _utc(ends_at)
        violations = self._closed_violations() + _booked_violations(session)
        calendar, follows = self._calendar_violations(session.kind, starts_at, ends_at, ignore=session.id)
        violations += calendar
        if session.kind is Kind.MEDICINE:
            violations += self._moved_medicine_violations(session, starts_at, ends_at)
        if session.kind is Kind.INTEGRATION and session.follows and follows != session.follows:
            violations += self._left_window_violations(session)
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
        )

    def _moved_medicine_violations(self, medicine: Session, starts_at: datetime, ends_at: datetime) -> list[Violation]:
        """Its booked integration sessions must still follow it (I1) and the first still open the window (I4)."""
        following = [
            s for s in self.sessions.values()
            if s.kind is Kind.INTEGRATION and s.active and s.follows == medicine.id
        ]
        violations = []
        if any(s.starts_at < ends_at for s in following):
            violations.append(
                Violation("I1", f"integration sessions are already booked before the new end of {medicine.id}")
            )
        deadline = ends_at + timedelta(hours=self.protocol.integration_window_hours)
        if following and min(s.starts_at for s in following) > deadline and medicine.id not in self.missed_windows:
            violations.append(
                Violation(
                    "I4",
                    f"the first integration session after medicine session {medicine.id} must start by "
                    f"{deadline.isoformat()} ({self.protocol.integration_window_hours} h after it ends)",
                )
            )
        return violations

    def _left_window_violations(self, moved: Session) -> list[Violation]:
        """An integration session moved to another medicine session may not leave the window of the one it
        followed without an integration session in it (I4), unless that window was already recorded missed."""
        medicine = self.sessions.get(moved.follows or "")
        if medicine is None or medicine.id in self.missed_windows or moved.status is not SessionStatus.BOOKED:
            return []  # a session that is not booked is not moved at all (session-state)
        following = [
            s for s in self.sessions.values()
            if s.kind is Kind.INTEGRATION and s.active and s.follows == medicine.id
        ]
        remaining = [s.starts_at for s in following if s.id != moved.id]
        deadline = self.window_deadline(medicine)
        if min(s.starts_at for s in following) <= deadline and remaining and min(remaining) > deadline:
            return [
                Violation(
                    "I4",
                    f"the first integration session after medicine session {medicine.id} must start by "
                    f"{deadline.isoformat()} ({self.protocol.integration_window_hours} h after it ends)",
                )
            ]
        return []

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
        violations = self._closed_violations() + _booked_violations(session)
        if session.confirmation is Confirmation.NOT_NEEDED:
            violations.append(
                Violation(
                    "session-confirmation",
                    f"session {session_id} needs no confirmation: only a medicine session hosted by a partner clinic does",
                )
            )
        elif session.confirmation is decided:
            violations.append(Violation("session-confirmation", f"session {session_id} is already {decided.value}"))
        self._refuse_if(violations)
        if decided is Confirmation.CONFIRMED:
            self.trigger_event(self.SessionConfirmed, session_id=session_id, clinic_id=clinic_id, by=by)
        else:
            self.trigger_event(self.SessionDeclined, session_id=session_id, clinic_id=clinic_id, reason=reason, by=by)

    def cancel_session(self, *, session_id: str, reason: str, by: str) -> None:
        session = self.session(session_id)
        violations = self._closed_violations() + _booked_violations(session)
        self._refuse_if(violations)
        self.trigger_event(self.SessionCancelled, session_id=session_id, reason=reason, by=by)

    def record_missed(self, *, session_id: str, reason: str, now: datetime, by: str) -> None:
        session, now = self.session(session_id), _utc(now)
        violations = self._closed_violations() + _booked_violations(session)
        if session.starts_at > now:
            violations.append(Violation("session-not-started", f"session {session_id} has not started yet"))
        self._refuse_if(violations)
        self.trigger_event(self.SessionMissed, session_id=session_id, reason=reason, by=by)

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
        by: str,
    ) -> None:
        session = self.session(session_id)
        doses, vitals, adverse_events = doses or [], vitals or [], adverse_events or []
        if session.kind is not Kind.MEDICINE and (doses or vitals or adverse_events or discharged_at):
            raise InvalidCommandError(["doses, vitals, adverse events and discharge belong to medicine sessions"])
        _check_medicine_record_shape(doses, vitals, adverse_events)
        now = _utc(now)
        doses = [{**d, "at": _utc(d["at"])} for d in doses]
        vitals = [{**v, "at": _utc(v["at"])} for v in vitals]
        adverse_events = [{**a, "at": _utc(a["at"])} for a in adverse_events]
        discharged_at = _utc(discharged_at) if discharged_at is not None else None
        recorded_times = [x["at"] for x in (*doses, *vitals, *adverse_events)] + [discharged_at] * bool(discharged_at)
        if any(at > now for at in recorded_times):
            raise InvalidCommandError(["doses, vitals, adverse events and discharge cannot be recorded in the future"])
        violations = self._closed_violations() + _booked_violations(session)
        if session.starts_at > now:
            violations.append(Violation("session-not-started", f"session {session_id} has not started yet"))
        if session.kind is Kind.PREPARATION and not self.assessed:
            violations.append(Violation("I1", "a preparation session cannot be held before the course is Assessed"))
        if session.kind is Kind.MEDICINE:
            violations += self._medicine_violations(session, doses, vitals, discharged_at, now)
            if discharged_at is not None and discharged_at > session.ends_at:
                # The couple stays until discharge (I10): the session may not run into another one.
                clash = [
                    s for s in self.sessions.values()
                    if s.active and s.id != session.id and s.overlaps(session.starts_at, discharged_at)
                ]
                if clash:
                    violations.append(
                        Violation("I10", f"discharge at {discharged_at.isoformat()} runs into session {clash[0].id}")
                    )
        if session.kind is Kind.INTEGRATION:
            medicine = self.sessions.get(session.follows or "")
            if medicine is None or not self.has_milestone("dosed", medicine.id):
                violations.append(
                    Violation("I1", "an integration session cannot be held before its medicine session is Dosed")
                )
        self._refuse_if(violations)
        record: dict[str, Any] = {"notes": notes}
        if session.kind is Kind.MEDICINE:
            record.update(doses=doses, vitals=vitals, adverse_events=adverse_events, discharged_at=discharged_at)
        self.trigger_event(self.SessionHeld, session_id=session_id, record=record, by=by)
        if session.kind is Kind.MEDICINE:
            self.trigger_event(
                self.Dosed, session_id=session_id, integration_deadline=self.window_deadline(session), by=by
            )
        self._record_milestones(by)

    def _medicine_violations(
        self,
        session: Session,
        doses: list[dict[str, Any]],
        vitals: list[dict[str, Any]],
        discharged_at: datetime | None,
        now: datetime,
    ) -> list[Violation]:
        violations = []
        if not self.prepared:
            violations.append(Violation("I1", "a medicine session cannot be held before the course is Prepared"))
        dosed_before = self.dosed_sessions()
        if dosed_before:
            last = dosed_before[-1]
            # Count only integration sessions that took place before this medicine session (I3 in time order).
            held = len([s for s in self.integration_held_after(last.id) if s.starts_at < session.starts_at])
            if session.starts_at < last.starts_at:
                violations.append(
                    Violation("I3", f"medicine session {session.id} took place before Dosed session {last.id}")
                )
            if held < self.protocol.min_integration_sessions:
                violations.append(
                    Violation(
                        "I3",
                        f"medicine session {last.id} needs {self.protocol.min_integration_sessions} integration "
                        f"sessions held before the next medicine session; {held} held",
                    )
                )
        for earlier in dosed_before:
            window = self.missed_windows.get(earlier.id)
            missed = (window is not None) or (
                not self.integration_in_window(earlier) and now > self.window_deadline(earlier)
            )
            if missed and not (window and window.acknowledged):
                violations.append(
                    Violation(
                        "I4",
                        f"the integration window after medicine session {earlier.id} was missed; a clinician must "
                        "acknowledge it before the next dose",
                    )
                )
        partners = {d["partner"] for d in doses}
        expected = self.expected_dosed(len(dosed_before))
        if not doses:
            violations.append(Violation("I7", "a held medicine session records the doses given"))
        elif partners != expected or len(doses) != len(partners):
            rule = "exactly one partner, in turn" if self.model is Model.TAKING_TURNS else "both partners"
            violations.append(
                Violation(
                    "I7",
                    f"the {self.model.value} model doses {rule}: expected {sorted(expected)}, got "
                    f"{sorted(d['partner'] for d in doses)}",
                )
            )
        for dose in doses:
            violations += self._approval_violations(session, dose)
            violations += self._vitals_violations(dose, vitals, discharged_at)
        return violations

    def _approval_violations(self, session: Session, dose: dict[str, Any]) -> list[Violation]:
        partner = dose["partner"]
        approval = self.approvals.get(dose.get("approval_id") or "")
        if approval is None or approval.session_id != session.id or approval.partner != partner:
            return [Violation("I6", f"partner {partner} has no dose approval for session {session.id}")]
        if approval.status is not ApprovalStatus.APPROVED:
            return [Violation("I6", f"dose approval {approval.id} is {approval.status.value}, not approved")]
        violations = []
        assert approval.decided_at and approval.expires_at and approval.approved_mg is not None
        if not approval.decided_at <= dose["at"] <= approval.expires_at:
            violations.append(
                Violation(
                    "I6",
                    f"dose approval {approval.id} is valid from {approval.decided_at.isoformat()} until "
                    f"{approval.expires_at.isoformat()}; the dose was given {dose['at'].isoformat()}",
                )
            )
        if dose["mg"] > approval.approved_mg:
            violations.append(
                Violation("I6", f"partner {partner} was given {dose['mg']} mg; {approval.approved_mg} mg was approved")
            )
        return violations

    def _vitals_violations(
        self, dose: dict[str, Any], vitals: list[dict[str, Any]], discharged_at: datetime | None
    ) -> list[Violation]:
        partner, dosed_at = dose["partner"], dose["at"]
        mine = [v for v in vitals if v["partner"] == partner]
        pre = [v for v in mine if v["stage"] == Stage.PRE and v["at"] <= dosed_at]
        post = [
            v for v in mine
            if v["stage"] == Stage.POST and POST_DOSE_VITALS_FROM <= v["at"] - dosed_at <= POST_DOSE_VITALS_UNTIL
        ]
        discharge = [v for v in mine if v["stage"] == Stage.DISCHARGE]
        violations = []
        if not pre:
            violations.append(Violation("I8", f"partner {partner} has no vitals recorded before the dose"))
        if not post:
            violations.append(Violation("I8", f"partner {partner} has no vitals recorded about 40 min after the dose"))
        minimum = timedelta(minutes=self.protocol.min_monitoring_minutes)
        if discharged_at is None:
            violations.append(Violation("I8", "a held medicine session records the discharge time"))
        else:
            if discharged_at < dosed_at + minimum:
                violations.append(
                    Violation(
                        "I8",
                        f"discharge is allowed {self.protocol.min_monitoring_minutes} min after the dose of partner "
                        f"{partner}, at {(dosed_at + minimum).isoformat()} at the earliest",
                    )
                )
            at_discharge = [v for v in discharge if dosed_at <= v["at"] <= discharged_at]
            if not at_discharge:
                violations.append(Violation("I8", f"partner {partner} has no vitals recorded at discharge"))
            elif not max(at_discharge, key=lambda v: v["at"])["acceptable"]:
                violations.append(Violation("I8", f"partner {partner}'s discharge vitals are not marked acceptable"))
        if pre:
            reading = max(pre, key=lambda v: v["at"])
            if not reading["acceptable"]:
                violations.append(Violation("I9", f"partner {partner}'s pre-dose vitals are not marked acceptable"))
            limit = self.protocol.vitals_limit
            approval = self.approvals.get(dose.get("approval_id") or "")
            overridden = approval is not None and bool(approval.vitals_override_reason)
            if limit is not None and not overridden:
                over = reading["systolic"] > limit.systolic or reading["diastolic"] > limit.diastolic or (
                    limit.heart_rate is not None and reading["heart_rate"] > limit.heart_rate
                )
                if over:
                    violations.append(
                        Violation(
                            "I9",
                            f"partner {partner}'s pre-dose vitals exceed the clinic limit "
                            f"({limit.systolic}/{limit.diastolic} mmHg"
                            + (f", {limit.heart_rate} bpm" if limit.heart_rate is not None else "")
                            + ") and the prescriber gave no override",
                        )
                    )
        return violations

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
        session, now = self.session(session_id), _utc(now)
        problems = []
        if partner not in PARTNERS:
            problems.append("partner must be 'a' or 'b'")
        if not requested_mg > 0:
            problems.append("requested_mg must be positive")
        if approval_id in self.approvals:
            problems.append(f"approval id {approval_id} is already used in this course")
        if problems:
            raise InvalidCommandError(problems)
        violations = self._closed_violations() + _booked_violations(session)
        if session.kind is not Kind.MEDICINE:
            violations.append(Violation("I6", "dose approvals are for medicine sessions"))
        if not prescriber_authorised:
            violations.append(
                Violation("I6", f"prescriber {prescriber_id} is not authorised at hosting clinic {session.clinic_id}")
            )
        open_for_partner = [
            a for a in self.approvals.values()
            if a.session_id == session_id and a.partner == partner and a.status is not ApprovalStatus.DECLINED
        ]
        if open_for_partner:
            violations.append(
                Violation("I6", f"partner {partner} already has dose approval {open_for_partner[0].id} for this session")
            )
        if session.kind is Kind.MEDICINE and self.model is Model.TAKING_TURNS:
            upcoming = [s for s in self._sessions(Kind.MEDICINE, SessionStatus.BOOKED) if s.starts_at < session.starts_at]
            index = len(self.dosed_sessions()) + len(upcoming)
            expected = self.expected_dosed(index)
            if partner not in expected:
                violations.append(
                    Violation("I7", f"in the taking_turns model, partner {sorted(expected)[0]} is dosed at this session")
                )
        self._refuse_if(violations)
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

    def decide_dose_approval(
        self,
        *,
        approval_id: str,
        prescriber_id: str,
        approve: bool,
        now: datetime,
        approved_mg: float | None = None,
        reason: str = "",
        vitals_override_reason: str | None = None,
        by: str,
    ) -> None:
        approval, now = self.approval(approval_id), _utc(now)
        if approval.prescriber_id != prescriber_id:
            raise NotAddressedError(approval_id)
        if approve:
            approved_mg = approval.requested_mg if approved_mg is None else approved_mg
            if not 0 < approved_mg <= approval.requested_mg:
                raise InvalidCommandError([f"approved_mg must be in (0, {approval.requested_mg}]"])
        violations = self._closed_violations()
        if approval.status is not ApprovalStatus.PENDING:
            violations.append(Violation("approval-decided", f"dose approval {approval_id} is already {approval.status.value}"))
        self._refuse_if(violations)
        valid = timedelta(days=self.protocol.approval_valid_days)
        self.trigger_event(
            self.DoseApprovalDecided,
            approval_id=approval_id,
            decision=(ApprovalStatus.APPROVED if approve else ApprovalStatus.DECLINED).value,
            approved_mg=float(approved_mg) if approve and approved_mg is not None else None,
            decided_at=now,
            expires_at=now + valid if approve else None,
            reason=reason,
            vitals_override_reason=(vitals_override_reason or None) if approve else None,
            by=by,
        )

    # ------------------------------------------------------- integration window

    def record_missed_integration_windows(self, *, now: datetime, by: str) -> list[str]:
        """Record every integration window that closed without an integration session held in it (I4)."""
        now = _utc(now)
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

    def acknowledge_missed_window(self, *, session_id: str, reason: str, by: str) -> None:
        self.session(session_id)
        if not reason.strip():
            raise InvalidCommandError(["an acknowledgement gives a reason"])
        window = self.missed_windows.get(session_id)
        violations = self._closed_violations()
        if window is None:
            violations.append(Violation("I4", f"no missed integration window is recorded for session {session_id}"))
        elif window.acknowledged:
            violations.append(Violation("I4", f"the missed window of session {session_id} is already acknowledged"))
        self._refuse_if(violations)
        self.trigger_event(self.MissedWindowAcknowledged, session_id=session_id, reason=reason, by=by)

    # ------------------------------------------------------------- milestones

    def _record_milestones(self, by: str) -> None:
        if self.closed:
            return
        if not self.assessed:
            eligible = all(self.screenings.get(p) == "eligible" for p in PARTNERS)
            joint = any(s.is_joint for s in self._sessions(Kind.ASSESSMENT, SessionStatus.HELD))
            if eligible and joint:
                self.trigger_event(self.Assessed, by=by)
        if self.assessed and not self.prepared:
            held = self._sessions(Kind.PREPARATION, SessionStatus.HELD)
            joint = sum(1 for s in held if s.is_joint)
            individual = {p: sum(1 for s in held if s.partners == (p,)) for p in PARTNERS}
            if joint >= self.protocol.joint_preparation_sessions and all(
                n >= self.protocol.individual_preparation_sessions for n in individual.values()
            ):
                self.trigger_event(self.Prepared, by=by)
        for medicine in self.dosed_sessions():
            if self.has_milestone("integrated", medicine.id):
                continue
            if len(self.integration_held_after(medicine.id)) >= self.protocol.min_integration_sessions:
                self.trigger_event(self.Integrated, session_id=medicine.id, by=by)

    # ---------------------------------------------------------------- closing

    def completion_violations(self) -> list[Violation]:
        violations = self._closed_violations()
        dosed = self.dosed_sessions()
        if not dosed:
            violations.append(Violation("I3", "a course completes only after a medicine session is Integrated"))
        for medicine in dosed:
            if not self.has_milestone("integrated", medicine.id):
                violations.append(
                    Violation(
                        "I3",
                        f"medicine session {medicine.id} needs {self.protocol.min_integration_sessions} integration "
                        "sessions held before completion",
                    )
                )
        booked = [s.id for s in self.sessions.values() if s.status is SessionStatus.BOOKED]
        if booked:
            violations.append(
                Violation("booked-sessions", f"record or cancel the booked sessions first: {', '.join(booked)}")
            )
        return violations

    def complete(self, *, by: str) -> None:
        self._refuse_if(self.completion_violations())
        self.trigger_event(self.Completed, by=by)

    def discontinue(self, *, reason: str, by: str) -> None:
        if not reason.strip():
            raise InvalidCommandError(["discontinuing gives a reason"])
        self._refuse_if(self._closed_violations())
        self.trigger_event(self.Discontinued, reason=reason, by=by)

    # --------------------------------------------------------------- next steps

    def allowed_actions(self) -> list[str]:
        if self.closed:
            return []
        actions = ["book_session", "discontinue"]
        if not self.assessed:
            actions.append("record_screening")
        if any(s.status is SessionStatus.BOOKED for s in self.sessions.values()):
            actions += ["record_session", "reschedule_session", "cancel_session"]
        if self.prepared and self._sessions(Kind.MEDICINE, SessionStatus.BOOKED):
            actions.append("request_dose_approval")
        if any(a.status is ApprovalStatus.PENDING for a in self.approvals.values()):
            actions.append("decide_dose_approval")
        if any(not w.acknowledged for w in self.missed_windows.values()):
            actions.append("acknowledge_missed_window")
        if not self.completion_violations():
            actions.append("complete")
        return sorted(actions)


def _parse_kind(kind: Kind | str) -> Kind:
    try:
        return Kind(kind)
    except ValueError:
        raise InvalidCommandError([f"kind must be one of {[k.value for k in Kind]}"]) from None


def _utc(at: datetime) -> datetime:
    """Instants in UTC: Python compares and adds aware datetimes of one zone by wall clock, not elapsed time."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidCommandError(["times must carry a UTC offset"])
    return at.astimezone(timezone.utc)


def _time_problems(starts_at: datetime, ends_at: datetime) -> list[str]:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        return ["times must carry a UTC offset"]
    if ends_at <= starts_at:
        return ["ends_at must be after starts_at"]
    if ends_at - starts_at > timedelta(hours=12):
        return ["a session lasts at most 12 hours"]
    return []


def _booked_violations(session: Session) -> list[Violation]:
    if session.status is not SessionStatus.BOOKED:
        return [Violation("session-state", f"session {session.id} is {session.status.value}, not booked")]
    return []


def _hosting_violations(home_clinic_id: str, clinic_id: str, host: HostFacts | None) -> list[Violation]:
    if host is None or host.clinic_id != clinic_id:
        return [Violation("I11", f"clinic {clinic_id} is unknown as a host")]
    violations = []
    if not host.has_prescriber:
        violations.append(Violation("I11", f"clinic {clinic_id} has no prescriber to host a medicine session"))
    if clinic_id != home_clinic_id and not host.is_partner_of_home:
        violations.append(Violation("I11", f"clinic {clinic_id} has no partnership with the home clinic"))
    return violations


def _check_medicine_record_shape(
    doses: list[dict[str, Any]], vitals: list[dict[str, Any]], adverse_events: list[dict[str, Any]]
) -> None:
    problems = []
    for dose in doses:
        if dose.get("partner") not in PARTNERS or not (isinstance(dose.get("mg"), (int, float)) and dose["mg"] > 0):
            problems.append("each dose names partner 'a' or 'b' and a positive mg")
        if not isinstance(dose.get("at"), datetime) or dose["at"].tzinfo is None:
            problems.append("each dose has a time 'at' with a UTC offset")
    for reading in vitals:
        if reading.get("partner") not in PARTNERS or reading.get("stage") not in tuple(Stage):
            problems.append("each vitals reading names partner 'a' or 'b' and stage pre, post or discharge")
        if not isinstance(reading.get("at"), datetime) or reading["at"].tzinfo is None:
            problems.append("each vitals reading has a time 'at' with a UTC offset")
    for adverse in adverse_events:
        if adverse.get("partner") not in PARTNERS:
            problems.append("each adverse event names partner 'a' or 'b'")
        if not isinstance(adverse.get("at"), datetime) or adverse["at"].tzinfo is None:
            problems.append("each adverse event has a time 'at' with a UTC offset")
    if problems:
        raise InvalidCommandError(sorted(set(problems)))
