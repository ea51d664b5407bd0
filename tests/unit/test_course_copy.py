"""The repository's copy of a cached course shares nothing that a command changes."""

from __future__ import annotations

import copy
from datetime import timedelta

from eventsourcing.application import Application

from builders import BY, PRESCRIBER, book, dose, integrate, prepared_course
from scheduler.domain.model import Kind


def test_commands_on_a_copy_leave_the_original_as_stored() -> None:
    course, end = prepared_course()
    dose(course, "m1", end + timedelta(days=2), ["a"])
    book(course, "m2", Kind.MEDICINE, end + timedelta(days=20), length=timedelta(hours=3))
    course.request_dose_approval(approval_id="ap-2", session_id="m2", partner="b", prescriber_id=PRESCRIBER,
                                 requested_mg=90, prescriber_authorised=True, now=end + timedelta(days=19), by=BY)
    course.record_missed_integration_windows(now=end + timedelta(days=10), by=BY)
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.save(course)

    clone = copy.deepcopy(course)
    clone.decide_dose_approval(approval_id="ap-2", prescriber_id=PRESCRIBER, approve=True,
                               now=end + timedelta(days=19), by=f"prescriber:{PRESCRIBER}")
    clone.acknowledge_missed_window(session_id="m1", reason="illness", by=BY)
    integrate(clone, "m1", count=1)
    clone.reschedule_session(session_id="m2", starts_at=end + timedelta(days=21),
                             ends_at=end + timedelta(days=21, hours=3), by=BY)

    stored = app.repository.get(course.id)
    assert stored.__dict__ == course.__dict__
    assert clone.approvals["ap-2"].status != course.approvals["ap-2"].status
    assert clone.missed_windows["m1"].acknowledged and not course.missed_windows["m1"].acknowledged
    assert clone.sessions["m2"].starts_at != course.sessions["m2"].starts_at
    assert len(clone.sessions) > len(course.sessions) and len(clone.milestones) >= len(course.milestones)
