"""Who may be dosed, when and how much: I6 (approvals), I7 (the model's turns), I3 and I4 before the next dose."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from scheduler.domain.errors import Violation
from scheduler.domain.model import ApprovalStatus, DoseApproval, Kind, Session
from scheduler.domain.protocol import Model

if TYPE_CHECKING:
    from scheduler.domain.state import CourseState


def request_violations(
    course: CourseState, session: Session, partner: str, prescriber_id: str, prescriber_authorised: bool,
    now: datetime,
) -> list[Violation]:
    """I6 and I7 for asking a prescriber to approve a partner's dose at a session. A declined, withdrawn or expired
    approval does not stand in the way, nor one that expires before the session starts: the partner's dose may be
    requested again."""
    violations = []
    if session.kind is not Kind.MEDICINE:
        violations.append(Violation("I6", "dose approvals are for medicine sessions"))
    if not prescriber_authorised:
        violations.append(
            Violation("I6", f"prescriber {prescriber_id} is not authorised at hosting clinic {session.clinic_id}")
        )
    open_for_partner = standing_approvals(course, session, partner, now)
    if open_for_partner:
        standing = open_for_partner[0]
        carried = "" if standing.session_id == session.id else (
            f" (approved for session {standing.session_id}, which took place without a dose; usable until "
            f"{standing.expires_at.isoformat() if standing.expires_at else 'it expires'})")
        violations.append(
            Violation("I6", f"partner {partner} already has dose approval {standing.id} for this session{carried}")
        )
    if session.kind is Kind.MEDICINE and course.model is Model.TAKING_TURNS:
        expected = course.to_be_dosed(session)  # none once it took place without a dose (and is no longer booked)
        if expected and partner not in expected:
            violations.append(
                Violation("I7", f"in the taking_turns model, partner {sorted(expected)[0]} is dosed at this session")
            )
    return violations


def standing_approvals(course: CourseState, session: Session, partner: str, now: datetime) -> list[DoseApproval]:
    """The partner's approvals for the session that still stand: pending, or approved and valid until the session
    (not declined, withdrawn, or expired by now or by the session's start), including an approved dose carried
    from a session not dosed. While one stands, no other is asked."""
    return [
        a for a in course.approvals.values()
        if a.partner == partner and covers(course, a, session)
        and a.status not in (ApprovalStatus.DECLINED, ApprovalStatus.WITHDRAWN)
        and not (a.expires_at is not None and a.expires_at < max(now, session.starts_at))
    ]


def covers(course: CourseState, approval: DoseApproval, session: Session) -> bool:
    """Whether a dose at the session may be given under the approval: it was asked for this session, or it was
    approved for an earlier medicine session at the same clinic that took place without a dose and no dose has
    used it since (it stays usable until it expires)."""
    if approval.session_id == session.id:
        return True
    source = course.sessions.get(approval.session_id)
    return (source is not None and source.not_dosed and approval.status is ApprovalStatus.APPROVED
            and source.clinic_id == session.clinic_id and source.starts_at < session.starts_at
            and not any(d.get("approval_id") == approval.id
                        for s in course.sessions.values() if s.held and s.id != session.id
                        for d in s.held.get("doses", ())))


def decision_violations(approval: DoseApproval) -> list[Violation]:
    if approval.status is not ApprovalStatus.PENDING:
        return [Violation("approval-decided", f"dose approval {approval.id} is already {approval.status.value}")]
    return []


def dosed_at(session: Session, doses: list[dict[str, Any]] | None = None) -> datetime:
    """When a medicine session's dosing actually began: its first administration (recorded, or `doses` being
    recorded), else its booked start."""
    given = doses if doses is not None else (session.held or {}).get("doses") or []
    return min((d["at"] for d in given), default=session.starts_at)


def awaiting_discharge_violations(course: CourseState, session: Session) -> list[Violation]:
    """I8: no other medicine session takes place while one awaits its discharge."""
    return [
        Violation("I8", f"medicine session {waiting.id} awaits its discharge; record it before the next dose")
        for waiting in course.sessions.values() if waiting.awaiting_discharge and waiting.id != session.id]


def next_dose_violations(course: CourseState, session: Session, now: datetime,
                         doses: list[dict[str, Any]] | None = None) -> list[Violation]:
    """I3, I4 and I5 by the actual times: the medicine session dosed before this one was integrated by sessions
    that took place before this one's dose, the two doses are the protocol's interval apart, and no missed window
    is unanswered."""
    violations = awaiting_discharge_violations(course, session)
    dosed_before = course.dosed_sessions()
    this_dose = dosed_at(session, doses)
    if dosed_before:
        last = dosed_before[-1]
        # Count only integration sessions that took place before this medicine session's dose (I3 in time order).
        held = len([s for s in course.integration_held_after(last.id) if s.starts_at < this_dose])
        interval = timedelta(days=course.protocol.min_medicine_interval_days)
        last_dose = dosed_at(last)
        if last_dose <= this_dose < last_dose + interval:
            violations.append(Violation(
                "I5", f"medicine session {session.id} doses at {this_dose.isoformat()}, "
                      f"{(this_dose - last_dose).days} days after medicine session {last.id} did "
                      f"({last_dose.isoformat()}); the protocol wants {course.protocol.min_medicine_interval_days}"))
        if session.starts_at < last.starts_at:
            violations.append(
                Violation("I3", f"medicine session {session.id} took place before Dosed session {last.id}")
            )
        if held < course.protocol.min_integration_sessions:
            violations.append(
                Violation(
                    "I3",
                    f"medicine session {last.id} needs {course.protocol.min_integration_sessions} integration "
                    f"sessions held before the next medicine session; {held} held",
                )
            )
    for earlier in dosed_before:
        window = course.missed_windows.get(earlier.id)
        missed = (window is not None) or (
            not course.integration_in_window(earlier) and now > course.window_deadline(earlier)
        )
        if missed and not (window and window.acknowledged):
            violations.append(
                Violation(
                    "I4",
                    f"the integration window after medicine session {earlier.id} was missed; a clinician must "
                    "acknowledge it before the next dose",
                )
            )
    return violations


def turn_violations(course: CourseState, doses: list[dict[str, Any]]) -> list[Violation]:
    """I7: the doses a held medicine session records are the model's, for this session in dosing order."""
    partners = {d["partner"] for d in doses}
    expected = course.expected_dosed(len(course.dosed_sessions()))
    if not doses:
        return [Violation("I7", "a held medicine session records the doses given")]
    if partners != expected:  # a partner's dose may be given in several administrations (I6 bounds the total)
        rule = "exactly one partner, in turn" if course.model is Model.TAKING_TURNS else "both partners"
        return [
            Violation(
                "I7",
                f"the {course.model.value} model doses {rule}: expected {sorted(expected)}, got "
                f"{sorted(d['partner'] for d in doses)}",
            )
        ]
    return []


def absent_approval_violations(course: CourseState, session: Session, doses: list[dict[str, Any]]) -> list[Violation]:
    """I6 for the partners the model doses at this session whom the record leaves undosed (I7 names the missing
    dose): each also lacks an approved dose approval for it, unless one is there."""
    expected = course.expected_dosed(len(course.dosed_sessions()))
    missing = sorted(expected - {d["partner"] for d in doses})
    return [
        Violation("I6", f"partner {partner} has no dose approval for session {session.id}")
        for partner in missing
        if not any(a.partner == partner and a.status is ApprovalStatus.APPROVED and covers(course, a, session)
                   for a in course.approvals.values())
    ]


def approval_violations(course: CourseState, session: Session, doses: list[dict[str, Any]]) -> list[Violation]:
    """I6 for one partner's dose, given in one administration or several: each under an approval for this partner
    and session (or carried from a session not dosed), while it was valid; all of them together at most the
    approved amount."""
    partner = doses[0]["partner"]
    violations: list[Violation] = []
    given: dict[str, float] = {}
    for dose in doses:
        approval = course.approvals.get(dose.get("approval_id") or "")
        if approval is None or approval.partner != partner or not covers(course, approval, session):
            violations.append(Violation("I6", f"partner {partner} has no dose approval for session {session.id}"))
            continue
        if approval.status is not ApprovalStatus.APPROVED:
            violations.append(Violation("I6", f"dose approval {approval.id} is {approval.status.value}, not approved"))
            continue
        assert approval.decided_at and approval.expires_at and approval.approved_mg is not None
        if not approval.decided_at <= dose["at"] <= approval.expires_at:
            violations.append(
                Violation(
                    "I6",
                    f"dose approval {approval.id} is valid from {approval.decided_at.isoformat()} until "
                    f"{approval.expires_at.isoformat()}; the dose was given {dose['at'].isoformat()}",
                )
            )
        given[approval.id] = given.get(approval.id, 0.0) + dose["mg"]
    for approval_id, mg in given.items():
        approved = course.approvals[approval_id].approved_mg
        if approved is not None and mg > approved:
            how = f"{mg} mg" if len(doses) == 1 else f"{mg} mg in {len(doses)} administrations"
            violations.append(Violation("I6", f"partner {partner} was given {how}; {approved} mg was approved"))
    return violations
