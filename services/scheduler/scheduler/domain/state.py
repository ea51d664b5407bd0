"""What a course's events add up to: its phase, milestones, dosing order, integration windows and next steps."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from scheduler.domain.errors import UnknownApprovalError, UnknownSessionError, Violation
from scheduler.domain.model import (
    PARTNERS,
    ApprovalStatus,
    DoseApproval,
    Hold,
    Kind,
    MissedWindow,
    Phase,
    Session,
    SessionStatus,
    Status,
    utc,
)
from scheduler.domain.protocol import Model, Protocol
from scheduler.domain.rules import milestones


class CourseState:
    """The course's recorded state and the queries derived from it; the Course aggregate adds events and commands."""

    home_clinic_id: str
    model: Model
    protocol: Protocol
    partners: dict[str, str]
    first_dosed: str
    opened_by: str
    status: Status
    discontinue_reason: str | None
    screenings: dict[str, str]
    sessions: dict[str, Session]
    approvals: dict[str, DoseApproval]
    milestones: list[dict[str, Any]]
    missed_windows: dict[str, MissedWindow]
    holds: dict[str, Hold]

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

    def sessions_of(self, kind: Kind, *statuses: SessionStatus) -> list[Session]:
        """Sessions of a kind (in any of the statuses, if given), in the order they start."""
        found = [s for s in self.sessions.values() if s.kind is kind and (not statuses or s.status in statuses)]
        return sorted(found, key=lambda s: s.starts_at)

    def dosed_sessions(self) -> list[Session]:
        """Medicine sessions held with doses, in the order they were held (their Dosed milestones)."""
        ids = [m["session_id"] for m in self.milestones if m["milestone"] == "dosed"]
        return [self.sessions[i] for i in ids]

    def dosed_partners(self, session: Session) -> set[str]:
        return {d["partner"] for d in (session.held or {}).get("doses", [])}

    def integration_held_after(self, medicine_id: str) -> list[Session]:
        return [s for s in self.sessions_of(Kind.INTEGRATION, SessionStatus.HELD) if s.follows == medicine_id]

    def to_be_dosed(self, session: Session) -> set[str]:
        """Who is dosed at a medicine session: as recorded once held, else by the model's turn (I7), counting the
        sessions dosed and those booked before it."""
        if session.held is not None:
            return self.dosed_partners(session)
        upcoming = [s for s in self.sessions_of(Kind.MEDICINE, SessionStatus.BOOKED) if s.starts_at < session.starts_at]
        return self.expected_dosed(len(self.dosed_sessions()) + len(upcoming))

    def expected_dosed(self, index: int) -> set[str]:
        """Who is dosed at the medicine session with this index (0-based, in dosing order) (I7)."""
        if self.model is Model.TOGETHER:
            return set(PARTNERS)
        other = "b" if self.first_dosed == "a" else "a"
        return {self.first_dosed if index % 2 == 0 else other}

    def window_deadline(self, medicine: Session) -> datetime:
        return self.deadline_after(medicine.finished_at)

    def deadline_after(self, medicine_end: datetime) -> datetime:
        """When the integration window of a medicine session that ends then closes (I4)."""
        # In UTC: hours added to a time of a zone are wall-clock hours, off by one across a daylight-saving change.
        return utc(medicine_end) + timedelta(hours=self.protocol.integration_window_hours)

    def integration_in_window(self, medicine: Session) -> bool:
        deadline = self.window_deadline(medicine)
        return any(s.starts_at <= deadline for s in self.integration_held_after(medicine.id))

    def completion_violations(self) -> list[Violation]:
        return milestones.completion_violations(self)

    def allowed_actions(self) -> list[str]:
        if self.closed:
            return []
        actions = ["book_session", "discontinue"]
        if not self.assessed:
            actions.append("record_screening")
        if any(s.status is SessionStatus.BOOKED for s in self.sessions.values()):
            actions += ["record_session", "reschedule_session", "cancel_session"]
        if self.prepared and self.sessions_of(Kind.MEDICINE, SessionStatus.BOOKED):
            actions.append("request_dose_approval")
        if any(a.status is ApprovalStatus.PENDING for a in self.approvals.values()):
            actions.append("decide_dose_approval")
        if any(not w.acknowledged for w in self.missed_windows.values()):
            actions.append("acknowledge_missed_window")
        if not self.completion_violations():
            actions.append("complete")
        return sorted(actions)
