"""Who is told what, and which follow-ups to plan: the coordination rules, pure (no I/O).

Coordination: a dose approval goes to its prescriber, who is reminded and then escalated to the
home clinic; a medicine session at a partner clinic is a booking request to that clinic; an adverse event
alerts the prescriber and the home clinic at once; a closing or missed integration window alerts the home
clinic; milestones go to every clinic involved. The home clinic hears everything about its own courses; a
partner clinic only about the sessions it hosts and the milestones; a prescriber only about its approvals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kact_contracts import events as ev
from kact_contracts.feed import Recipient


@dataclass(frozen=True)
class Message:
    recipient: Recipient
    notice: str  # booking_request, adverse_event_alert, dose_approval_request, ... or update


@dataclass(frozen=True)
class Timer:
    """A follow-up notice due at `due_at` unless cancelled first (`key` names it, so it is planned once)."""

    key: str
    due_at: datetime
    notice: ev.Notice
    recipient: Recipient
    reason: str
    expires_at: datetime | None = None  # past this, the notice no longer makes sense and is dropped


@dataclass(frozen=True)
class Policy:
    remind_after: timedelta = timedelta(hours=1)
    escalate_after: timedelta = timedelta(hours=4)
    warn_before_window_closes: timedelta = timedelta(hours=24)
    # A follow-up already overdue when planned (the notifier was behind, or the event was late) waits this
    # long, so that a decision already on its way cancels it instead of crossing it.
    settle: timedelta = timedelta(seconds=5)


@dataclass(frozen=True)
class SessionFacts:
    clinic_id: str
    kind: str
    follows: str | None = None
    needs_confirmation: bool = False  # its host confirms it (again after every reschedule)


@dataclass
class CourseFacts:
    """What the notifier remembers of a course from earlier events (its own tables)."""

    home_clinic_id: str
    sessions: dict[str, SessionFacts] = field(default_factory=dict)
    approvals: dict[str, tuple[str, str]] = field(default_factory=dict)  # approval id -> (session id, prescriber)

    def partner_hosts(self, session_id: str | None = None) -> set[str]:
        """Clinics other than the home clinic hosting this session (or any session of the course)."""
        if session_id is None:
            hosts = {s.clinic_id for s in self.sessions.values()}
        else:
            hosts = {self.sessions[session_id].clinic_id} if session_id in self.sessions else set()
        return hosts - {self.home_clinic_id}


@dataclass
class Outcome:
    messages: list[Message] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)  # timer keys, or prefixes ending in ':'

    def tell(self, recipients: set[Recipient] | list[Recipient], notice: str) -> None:
        seen = {m.recipient for m in self.messages}
        for recipient in sorted(recipients):
            if recipient not in seen:
                self.messages.append(Message(recipient, notice))


def clinic(clinic_id: str) -> Recipient:
    return Recipient("clinic", clinic_id)


def prescriber(prescriber_id: str) -> Recipient:
    return Recipient("prescriber", prescriber_id)


def decide(event: ev.PublicEvent, course_id: str, facts: CourseFacts, policy: Policy) -> Outcome:
    """The messages and timers one course event causes. `facts` is the state before this event."""
    out = Outcome()
    home = clinic(facts.home_clinic_id)
    match event:
        case ev.SessionBooked():
            host = {clinic(event.clinic_id)} - {home}
            out.tell(host, "booking_request" if event.needs_confirmation else "update")
            out.tell([home], "update")
        case ev.SessionHeld() if event.adverse_events:
            prescribers = {prescriber(rx) for sid, rx in facts.approvals.values() if sid == event.session_id}
            out.tell({home, *prescribers}, "adverse_event_alert")
            out.tell({clinic(h) for h in facts.partner_hosts(event.session_id)}, "adverse_event_alert")
        case ev.SessionDischarged():  # the hosting clinic recorded it, the home clinic plans integration
            out.tell({home, *(clinic(h) for h in facts.partner_hosts(event.session_id))}, "update")
        case ev.AdverseEventReported():  # on its own, during the session or after the couple left: at once
            prescribers = {prescriber(rx) for sid, rx in facts.approvals.values() if sid == event.session_id}
            out.tell({home, *prescribers}, "adverse_event_alert")
            out.tell({clinic(h) for h in facts.partner_hosts(event.session_id)}, "adverse_event_alert")
        case ev.SessionRescheduled() if (session := facts.sessions.get(event.session_id)) and \
                session.needs_confirmation:
            out.tell({clinic(session.clinic_id)} - {home}, "booking_request")  # the host is asked again
            out.tell([home], "update")
        case ev.SessionRescheduled() | ev.SessionCancelled() | ev.SessionCancelledV2() | ev.SessionConfirmed() | \
                ev.SessionDeclined() | ev.SessionHeld() | ev.SessionMissed():
            out.tell([home], "update")
            out.tell({clinic(h) for h in facts.partner_hosts(event.session_id)}, "update")
            session = facts.sessions.get(event.session_id)
            if isinstance(event, ev.SessionHeld) and session and session.kind == "integration" and session.follows:
                out.cancel.append(f"{course_id}:window:{session.follows}:")
        case ev.DoseApprovalRequested():
            rx = prescriber(event.prescriber_id)
            out.tell([rx], "dose_approval_request")
            out.tell([home], "update")
            details = {"approval_id": event.approval_id, "session_id": event.session_id,
                       "prescriber_id": event.prescriber_id, "requested_at": event.requested_at}
            out.timers.append(Timer(f"{course_id}:approval:{event.approval_id}:reminder",
                                    event.requested_at + policy.remind_after,
                                    ev.DoseApprovalReminder(**details), rx, "dose_approval_reminder"))
            out.timers.append(Timer(f"{course_id}:approval:{event.approval_id}:escalation",
                                    event.requested_at + policy.escalate_after,
                                    ev.DoseApprovalEscalation(**details), home, "dose_approval_escalation"))
        case ev.DoseApprovalDecided() | ev.DoseApprovalWithdrawn():  # no reminder or escalation any more
            approval = facts.approvals.get(event.approval_id)
            out.tell([home], "update")
            if approval:
                out.tell([prescriber(approval[1])], "update")
            out.cancel.append(f"{course_id}:approval:{event.approval_id}:")
        case ev.VitalsLimitOverridden():  # the clinic that doses, and the home clinic, may go ahead
            approval = facts.approvals.get(event.approval_id)
            out.tell({home, *(clinic(h) for h in facts.partner_hosts(approval[0] if approval else None))}, "update")
        case ev.Dosed():
            out.tell({home, *(clinic(h) for h in facts.partner_hosts())}, "milestone")
            out.timers.append(Timer(f"{course_id}:window:{event.session_id}:closing",
                                    event.integration_deadline - policy.warn_before_window_closes,
                                    ev.IntegrationWindowClosing(session_id=event.session_id,
                                                                deadline=event.integration_deadline),
                                    home, "integration_window_warning", expires_at=event.integration_deadline))
        case ev.Integrated():
            out.tell({home, *(clinic(h) for h in facts.partner_hosts())}, "milestone")
        case ev.Assessed() | ev.Prepared():
            out.tell({home, *(clinic(h) for h in facts.partner_hosts())}, "milestone")
        case ev.IntegrationWindowMissed():
            out.tell([home], "integration_window_missed")
            out.cancel.append(f"{course_id}:window:{event.session_id}:")
        case ev.HoldExpired():  # the clinic that held the slot (only a home clinic holds) may hold another
            out.tell([home], "hold_expired")
        case ev.SlotHeld() | ev.HoldReleased():
            host = {clinic(event.clinic_id)} if isinstance(event, ev.SlotHeld) else set()
            out.tell([home], "update")
            out.tell(host - {home}, "update")  # a partner clinic sees the slots held at its place
        case ev.CourseCompleted() | ev.CourseDiscontinued():
            out.tell({home, *(clinic(h) for h in facts.partner_hosts())}, "update")
            out.cancel.append(f"{course_id}:")
        case _:
            out.tell([home], "update")
    return out


def remember(event: ev.PublicEvent, facts: CourseFacts) -> None:
    """Update the course facts after an event (in the same transaction as the messages)."""
    match event:
        case ev.SessionBooked():
            facts.sessions[event.session_id] = SessionFacts(event.clinic_id, event.kind, event.follows,
                                                            event.needs_confirmation)
        case ev.DoseApprovalRequested():
            facts.approvals[event.approval_id] = (event.session_id, event.prescriber_id)
