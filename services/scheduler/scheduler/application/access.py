"""Who may see or change what: the home clinic owns a course, a hosting clinic acts on the sessions it hosts."""

from __future__ import annotations

from scheduler.api_keys import Principal
from scheduler.application.errors import CourseNotFoundError, ForbiddenError
from scheduler.domain.course import Course, Session
from scheduler.domain.errors import NotHostingError


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
