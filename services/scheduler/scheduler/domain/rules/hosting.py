"""Where a medicine session may be hosted and who confirms it (I11)."""

from __future__ import annotations

from scheduler.domain.errors import Violation
from scheduler.domain.model import Confirmation, HostFacts, Session


def hosting_violations(home_clinic_id: str, clinic_id: str, host: HostFacts | None) -> list[Violation]:
    """I11: a medicine session is hosted by a known clinic with a prescriber, the home clinic or its partner."""
    if host is None or host.clinic_id != clinic_id:
        return [Violation("I11", f"clinic {clinic_id} is unknown as a host")]
    violations = []
    if not host.has_prescriber:
        violations.append(Violation("I11", f"clinic {clinic_id} has no prescriber to host a medicine session"))
    if clinic_id != home_clinic_id and not host.is_partner_of_home:
        violations.append(Violation("I11", f"clinic {clinic_id} has no partnership with the home clinic"))
    return violations


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
