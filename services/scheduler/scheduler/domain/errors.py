"""Errors the domain raises; the HTTP edge maps each to one problem type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    """One broken rule: an invariant id of docs/RULES.md (I1..I11) or a named state rule."""

    rule: str
    message: str


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


# State rules that make every other rule beside the point, strongest first: a closed course accepts nothing, and
# a session that is no longer booked is not recorded, moved or cancelled again, whatever else is wrong.
PRECEDING = ("course-closed", "session-state", "session-started")


class RulesBrokenError(DomainError):
    """A command would break one or more rules; nothing was recorded. It lists every rule broken, and only the
    relevant ones: where a state rule of `PRECEDING` is broken, the command is refused for that alone."""

    def __init__(self, violations: list[Violation]) -> None:
        assert violations, "a refusal names at least one rule"
        for rule in PRECEDING:
            if any(v.rule == rule for v in violations):
                violations = [v for v in violations if v.rule == rule]
                break
        self.violations = tuple(dict.fromkeys(violations))  # each once, in order
        super().__init__("; ".join(f"{v.rule}: {v.message}" for v in self.violations))


class InvalidCommandError(DomainError):
    """The command's own values are malformed or out of bounds (independent of state)."""

    def __init__(self, problems: list[str]) -> None:
        assert problems
        self.problems = tuple(problems)
        super().__init__("; ".join(problems))


class UnknownSessionError(DomainError):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"no session {session_id} in this course")


class UnknownHoldError(DomainError):
    """No open hold of that id in the course (booked, released, expired, or never taken)."""

    def __init__(self, hold_id: str) -> None:
        self.hold_id = hold_id
        super().__init__(f"no open hold {hold_id} in this course")


class UnknownApprovalError(DomainError):
    def __init__(self, approval_id: str) -> None:
        self.approval_id = approval_id
        super().__init__(f"no dose approval {approval_id} in this course")


class NotAddressedError(DomainError):
    """A prescriber tried to decide an approval addressed to someone else."""

    def __init__(self, approval_id: str) -> None:
        self.approval_id = approval_id
        super().__init__(f"dose approval {approval_id} is not addressed to this prescriber")


class NotHostingError(DomainError):
    """A clinic tried to confirm or decline a session that another clinic hosts."""

    def __init__(self, session_id: str, clinic_id: str) -> None:
        self.session_id, self.clinic_id = session_id, clinic_id
        super().__init__(f"session {session_id} is not hosted by clinic {clinic_id}")
