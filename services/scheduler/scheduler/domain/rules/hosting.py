"""Where a session may be hosted, who confirms it and when it may be recorded held (I11)."""

from __future__ import annotations

from scheduler.domain.errors import Violation
from scheduler.domain.model import Confirmation, HostFacts, Kind, Session


def hosting_violations(kind: Kind, home_clinic_id: str, clinic_id: str, host: HostFacts | None) -> list[Violation]:
    """I11: a session is hosted by the home clinic, or by another clinic under an agreed partnership that covers
    its kind; a medicine session only by a clinic with a prescriber."""
    if clinic_id == home_clinic_id and kind is not Kind.MEDICINE:
        return []
    if host is None or host.clinic_id != clinic_id:
        return [Violation("I11", f"clinic {clinic_id} is unknown as a host")]
    violations = []
    if kind is Kind.MEDICINE and not host.has_prescriber:
        violations.append(Violation("I11", f"clinic {clinic_id} has no prescriber to host a medicine session"))
    if clinic_id != home_clinic_id and not host.is_partner_of_home:
        violations.append(Violation(
            "I11", f"clinic {clinic_id} has no agreed partnership with the home clinic covering {kind.value} sessions"))
    return violations


def held_violations(session: Session) -> list[Violation]:
    """I11: a partner-hosted medicine session is recorded held only once its host confirmed it."""
    if session.confirmation in (Confirmation.NOT_NEEDED, Confirmation.CONFIRMED):
        return []
    if session.confirmation is Confirmation.DECLINED:
        return [_declined(session)]
    return [Violation("I11", f"the host has not confirmed session {session.id} yet")]


def missed_violations(session: Session) -> list[Violation]:
    """A declined session did not fail to take place: it was never agreed (reschedule or cancel it)."""
    return [_declined(session)] if session.confirmation is Confirmation.DECLINED else []


def _declined(session: Session) -> Violation:
    return Violation("I11", f"the host declined session {session.id}: reschedule it (to be confirmed again) or "
                            "cancel it")


def confirmation_violations(session: Session, decided: Confirmation) -> list[Violation]:
    """Only a session waiting on its host is confirmed or declined, and not twice the same way."""
    if session.confirmation is Confirmation.NOT_NEEDED:
        return [
            Violation(
                "session-confirmation",
                f"session {session.id} needs no confirmation: only a medicine session hosted by a partner clinic does",
            )
        ]
    if session.confirmation is decided:
        return [Violation("session-confirmation", f"session {session.id} is already {decided.value}")]
    return []
