"""I11 for every kind of session: hosting away needs a partnership covering the kind, a medicine session a
prescriber, and a partner-hosted medicine session is recorded held only once its host confirmed it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from builders import T0, book, open_course, prepared_course
from test_course_confirmation import PARTNER, PARTNER_HOST, THREE_H, confirm, hosted_course

from scheduler.domain.errors import RulesBrokenError, Violation
from scheduler.domain.model import HostFacts, Kind, SessionStatus

NOT_PARTNERED = HostFacts(PARTNER, has_prescriber=True, is_partner_of_home=False)
NO_PRESCRIBER = HostFacts(PARTNER, has_prescriber=False, is_partner_of_home=True)


def rules(error: RulesBrokenError) -> list[str]:
    return [v.rule for v in error.violations]


@pytest.mark.parametrize("kind", [Kind.ASSESSMENT, Kind.PREPARATION])
def test_a_session_of_any_kind_hosted_away_needs_a_partnership_covering_it(kind: Kind) -> None:
    course = open_course()
    with pytest.raises(RulesBrokenError) as refused:
        book(course, "s1", kind, T0, host=NOT_PARTNERED, clinic_id=PARTNER)
    assert refused.value.violations == (Violation(
        "I11", f"clinic {PARTNER} has no agreed partnership with the home clinic covering {kind.value} sessions"),)
    with pytest.raises(RulesBrokenError):
        book(course, "s1", kind, T0, host=None, clinic_id=PARTNER)  # nothing known of the host: refused
    book(course, "s1", kind, T0, host=PARTNER_HOST, clinic_id=PARTNER)
    assert course.sessions["s1"].clinic_id == PARTNER


def test_a_session_at_home_needs_no_host_facts_but_medicine_needs_a_prescriber() -> None:
    course = open_course()
    book(course, "s1", Kind.ASSESSMENT, T0, host=None)
    prepared, end = prepared_course()
    with pytest.raises(RulesBrokenError) as refused:
        book(prepared, "m1", Kind.MEDICINE, end + timedelta(days=1), length=THREE_H, host=NO_PRESCRIBER,
             clinic_id=PARTNER)
    assert rules(refused.value) == ["I11"] and "no prescriber" in refused.value.violations[0].message


def test_a_session_moved_at_a_host_whose_partnership_ended_is_refused() -> None:
    course, m1 = hosted_course()
    moved = m1 + timedelta(days=1)
    with pytest.raises(RulesBrokenError) as refused:
        course.reschedule_session(session_id="m1", starts_at=moved, ends_at=moved + THREE_H, host=NOT_PARTNERED,
                                  by="clinic:home")
    assert rules(refused.value) == ["I11"]
    course.reschedule_session(session_id="m1", starts_at=moved, ends_at=moved + THREE_H, host=PARTNER_HOST,
                              by="clinic:home")
    assert course.sessions["m1"].starts_at == moved


def hold_m1(course, **kw) -> None:
    session = course.sessions["m1"]
    course.record_held(session_id="m1", now=session.ends_at + timedelta(hours=1), by=f"clinic:{PARTNER}", **kw)


def test_a_partner_hosted_medicine_session_is_held_only_once_confirmed() -> None:
    course, _ = hosted_course()
    with pytest.raises(RulesBrokenError) as pending:
        hold_m1(course)
    assert ("I11", "the host has not confirmed session m1 yet") in [(v.rule, v.message) for v in
                                                                     pending.value.violations]
    confirm(course, decision="declined", reason="no nurse")
    with pytest.raises(RulesBrokenError) as declined:
        hold_m1(course)
    assert any(v.rule == "I11" and "declined" in v.message for v in declined.value.violations)
    # a declined session did not go missing either: reschedule it (asked again) or cancel it
    with pytest.raises(RulesBrokenError) as missed:
        course.record_missed(session_id="m1", reason="?", now=T0 + timedelta(days=60), by=f"clinic:{PARTNER}")
    assert rules(missed.value) == ["I11"]
    confirm(course)
    with pytest.raises(RulesBrokenError) as confirmed:
        hold_m1(course)
    assert "I11" not in rules(confirmed.value)  # what is left is the record itself (doses, vitals)


def test_who_recorded_a_session_is_kept() -> None:
    course, _ = hosted_course()
    confirm(course)
    course.record_missed(session_id="m1", reason="couple did not come", now=T0 + timedelta(days=60),
                         by=f"clinic:{PARTNER}", clinician_id="nurse-1")
    (event,) = [e for e in course.collect_events() if type(e).__name__ == "SessionMissed"]
    assert event.clinician_id == "nurse-1" and course.sessions["m1"].status is SessionStatus.MISSED
    course2 = open_course()
    book(course2, "s1", Kind.ASSESSMENT, T0, host=None)
    course2.record_held(session_id="s1", now=T0 + timedelta(hours=2), by="clinic:home", clinician_id="t-1")
    assert course2.sessions["s1"].held == {"notes": "", "clinician_id": "t-1"}
