"""Who may see or change what: the home clinic owns a course, a hosting clinic acts on the sessions it hosts; the
operator manages everything, a clinic itself and its prescribers, a prescriber itself."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from scheduler.api_keys import Principal
from scheduler.application.errors import CourseNotFoundError, ForbiddenError, NotFoundError
from scheduler.domain.course import Course, Session
from scheduler.domain.errors import NotHostingError

if TYPE_CHECKING:  # the use cases import these rules
    from scheduler.application.handlers import Directory


def clinic_of(principal: Principal) -> str:
    """The clinic acting: only a clinic's key changes courses."""
    if principal.kind != "clinic" or principal.clinic_id is None:
        raise ForbiddenError("only a clinic's key can change a course")
    return principal.clinic_id


def may_see(home_clinic_id: str, principal: Principal) -> bool:
    """A course is visible to its home clinic and the operator; to anyone else it does not exist."""
    return principal.kind == "operator" or (principal.kind == "clinic" and home_clinic_id == principal.clinic_id)


def owned(course: Course, principal: Principal) -> Course:
    """The course, if the principal's clinic is its home clinic (which alone changes it)."""
    if principal.kind == "clinic" and course.home_clinic_id == principal.clinic_id:
        return course
    raise CourseNotFoundError(course.id)


def hosted(course: Course, session_id: str, clinic_id: str) -> Session:
    """A session that `clinic_id` hosts for another clinic's course. A clinic that hosts nothing of the course
    does not see the course at all; one that hosts other sessions of it does not see this one."""
    if not any(s.clinic_id == clinic_id for s in course.sessions.values()):
        raise CourseNotFoundError(course.id)
    session = course.session(session_id)
    if session.clinic_id != clinic_id:
        raise NotHostingError(session_id, clinic_id)
    return session


def recordable(course: Course, session_id: str, principal: Principal) -> Session:
    """A session the principal's clinic records: one it hosts, for its own course or another clinic's (the
    clinic that hosts a session is the one that knows what happened in it)."""
    clinic = clinic_of(principal)
    if course.home_clinic_id != clinic:
        return hosted(course, session_id, clinic)
    session = course.session(session_id)
    if session.clinic_id != clinic:
        raise ForbiddenError(f"session {session_id} is hosted by clinic {session.clinic_id}, which records it")
    return session


def reports_on(course: Course, session_id: str, principal: Principal) -> Session:
    """A session the principal's clinic may report an adverse event of: any session of its own course (the home
    clinic may learn of one after the couple left), or one it hosts for another clinic's course."""
    clinic = clinic_of(principal)
    if course.home_clinic_id != clinic:
        return hosted(course, session_id, clinic)
    return course.session(session_id)


def manages(principal: Principal, kind: str, owner_id: str, owner_clinic_id: str) -> bool:
    """Whether `principal` manages the clinic, clinician or prescriber `owner_id` (of clinic `owner_clinic_id`)."""
    if principal.kind == "operator":
        return True
    if principal.kind == "clinic":
        return principal.clinic_id == owner_clinic_id
    return principal.kind == "prescriber" and kind == "prescriber" and principal.id == owner_id


async def managed_owner(directory: Directory, principal: Principal, kind: str, owner_id: UUID) -> str:
    """The id of the clinic or prescriber `owner_id`, if it exists and the caller manages it: to anyone else it
    does not exist."""
    if kind == "clinic":
        if manages(principal, kind, str(owner_id), str(owner_id)) and await directory.clinic(owner_id):
            return str(owner_id)
    else:
        clinician = (await directory.clinicians([owner_id])).get(str(owner_id))
        if clinician is not None and clinician["role"] == "prescriber" and manages(
            principal, kind, str(owner_id), str(clinician["clinic_id"])
        ):
            return str(owner_id)
    raise NotFoundError(kind, owner_id)
