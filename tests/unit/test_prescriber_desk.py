"""What the prescriber's page shows of a pending approval, built from the course alone (pure)."""

from __future__ import annotations

from datetime import timedelta

from builders import BY, PRESCRIBER, book, dose, integrate, prepared_course
from scheduler.application.desk import approval_card
from scheduler.domain.model import Kind
from scheduler.domain.protocol import Model


def test_a_card_names_the_partner_dose_session_screening_latest_vitals_and_previous_doses() -> None:
    course, end = prepared_course(Model.TOGETHER)
    first = end + timedelta(days=1)
    dose(course, "m1", first, ["a", "b"])
    last = integrate(course, "m1")
    second = max(last, first + timedelta(days=7)) + timedelta(days=1)
    book(course, "m2", Kind.MEDICINE, second, length=timedelta(hours=3))
    course.request_dose_approval(approval_id="ap-m2-a", session_id="m2", partner="a", prescriber_id=PRESCRIBER,
                                 requested_mg=90, prescriber_authorised=True, now=second - timedelta(days=1), by=BY)
    approval = course.approvals["ap-m2-a"]

    card = approval_card(course, approval, {"home": "Harbour Couples Therapy"}, {})

    assert (card.partner, card.partner_ref, card.model) == ("a", "ref-a", "together")
    assert card.approval.requested_mg == 90 and card.session_id == "m2"
    assert (card.starts_at, card.clinic_name, card.room_name) == (second, "Harbour Couples Therapy", None)
    assert card.screening == "eligible"
    # the discharge reading of the first medicine session, partner a's own
    m1 = course.sessions["m1"].held or {}
    a_readings = sorted((v for v in m1["vitals"] if v["partner"] == "a"), key=lambda v: v["at"])
    assert card.latest_vitals is not None
    assert (card.latest_vitals.stage, card.latest_vitals.at) == ("discharge", a_readings[-1]["at"])
    assert (card.latest_vitals.systolic, card.latest_vitals.diastolic) == (120, 80)
    assert [(d.mg, d.session_id) for d in card.previous_doses] == [(100.0, "m1")]


def test_a_first_dose_has_no_vitals_or_doses_and_an_unknown_clinic_shows_its_id() -> None:
    course, end = prepared_course(Model.TAKING_TURNS)
    start = end + timedelta(days=3)
    book(course, "m1", Kind.MEDICINE, start, length=timedelta(hours=3))
    course.request_dose_approval(approval_id="ap-m1-a", session_id="m1", partner="a", prescriber_id=PRESCRIBER,
                                 requested_mg=100, prescriber_authorised=True, now=start - timedelta(days=1), by=BY)

    card = approval_card(course, course.approvals["ap-m1-a"], {}, {})

    assert card.latest_vitals is None and card.previous_doses == ()
    assert card.clinic_name == "home" and card.screening == "eligible"
