"""The clinical rules I1-I11 the scheduler enforces, explained for the people who meet them in a refusal: the page
`GET /rules` (no key needed) and `docs/RULES.md`, which every problem type naming a rule links to.

`python -m scheduler.http.problem_types` writes `docs/RULES.md` with the problem pages (a test fails when they
drift)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    title: str
    rule: str  # what must hold
    setting: str  # its default and bounds, where it has any
    why: str
    enforced: str  # when it is checked, and what happens then


RULES: dict[str, Rule] = {
    "I1": Rule(
        "Phases happen in order",
        "A course runs through assessment, then preparation, then cycles of a medicine session followed by "
        "integration sessions. A session of a later phase is held only after the earlier phase's milestone: "
        "assessment is complete once both partners were screened eligible and a joint assessment session was held; "
        "preparation once the protocol's individual and joint preparation sessions were held.",
        "Preparation: individual sessions per partner default 1, bounds 1 to 4 (`individual_preparation_sessions`); "
        "joint sessions default 2, bounds 2 to 8 (`joint_preparation_sessions`).",
        "Ketamine is given only to a couple screened eligible and prepared for the session: the preparation "
        "builds the therapeutic frame the dosing session relies on.",
        "Checked when a session is recorded held (and at booking, an integration session must follow a medicine "
        "session); a session counts for its phase only if it took place after the milestone it depends on, "
        "whatever the order in which the sessions were recorded."),
    "I2": Rule(
        "A limited number of medicine sessions",
        "A course holds at most the protocol's number of medicine sessions. A medicine session that took place "
        "without a dose does not count.",
        "Default 6, bounds 1 to 6; up to 8 for the `together` low-dose protocol.",
        "Published protocols give one to six dosing sessions, six to eight for low-dose protocols.",
        "Checked when a medicine session is booked or moved."),
    "I3": Rule(
        "Integration after each medicine session",
        "After each medicine session, the protocol's minimum of integration sessions is held before the next "
        "medicine session is held, and before the course is completed.",
        "Default 4, bounds 1 to 8.",
        "Integration is where the couple works with what the medicine session opened; it is the therapy, not an "
        "extra.",
        "Checked when a medicine session is recorded held and when the course is completed."),
    "I4": Rule(
        "The integration window",
        "The first integration session after a medicine session starts within the window after that session's "
        "end. If none is held in time, the course records a missed window and the home clinic is alerted; the "
        "next dose is blocked until a clinician acknowledges the missed window with a reason "
        "(`POST /v1/courses/{id}/missed-windows/{session}/acknowledge`).",
        "Default 48 hours, bounds 24 to 120, counted in elapsed hours.",
        "The days after a dose are a window of heightened neuroplasticity; integration is planned inside it.",
        "A booking outside the window is refused; the deadline watcher records a missed window once it passed."),
    "I5": Rule(
        "Time between medicine sessions",
        "Two medicine sessions start at least the protocol's interval apart.",
        "Default 7 days, bounds 1 to 90.",
        "Dosing sessions are spaced over weeks to months, with integration in between.",
        "Checked when a medicine session is booked or moved, and again when its dose is recorded."),
    "I6": Rule(
        "A dose needs a valid approval",
        "Each dosed partner has an approved dose approval for that medicine session, from a prescriber authorised "
        "at the hosting clinic, not expired, and the dose given is at most the approved dose. The home clinic "
        "requests the approval; only the prescriber it is addressed to decides it. Approved doses of a session "
        "that took place without a dose stay usable at the next medicine session at the same clinic until they "
        "expire.",
        "An approval is valid for 14 days by default, bounds 1 to 30.",
        "Ketamine is a prescription medicine: each dose is approved by a licensed prescriber.",
        "Checked when a dose is recorded; a decision by anyone but the addressed prescriber is refused."),
    "I7": Rule(
        "The dosing model",
        "In a `taking_turns` course exactly one partner is dosed per medicine session, the partners alternating; "
        "in a `together` course both partners are dosed.",
        "Chosen when the course opens.",
        "The two models of ketamine-assisted couple therapy: one partner dosed while the other supports, or both "
        "at a low dose.",
        "Checked when a medicine session's doses are requested and recorded."),
    "I8": Rule(
        "Monitoring and discharge",
        "A dosed partner's vitals (blood pressure, heart rate) are recorded before the dose, about 40 minutes "
        "after it, and at discharge, each within the session; discharge comes no earlier than the minimum "
        "monitoring time after the dose, and only with vitals marked acceptable.",
        "Minimum monitoring time default 120 minutes, bounds 60 to 240 (`min_monitoring_minutes`); the pre-dose "
        "reading at most 60 minutes before the dose, bounds 15 to 240 (`pre_dose_vitals_minutes`); what the session "
        "records lies within it give or take 15 minutes, bounds 0 to 60 (`record_tolerance_minutes`).",
        "Ketamine raises blood pressure and heart rate and dissociates: the patient is monitored until its "
        "effects resolve (esketamine's safety programme asks for at least two hours).",
        "Checked when the medicine session is recorded held."),
    "I9": Rule(
        "Acceptable vitals before the dose",
        "Vitals taken before a dose are marked acceptable by the clinician. A clinic may also set numeric limits "
        "(for example 140/90 mmHg) above which the dose is refused, unless the approval's prescriber overrides "
        "that one reading, on the day, with a ceiling and a reason "
        "(`POST /v1/dose-approvals/{id}/vitals-override`).",
        "No numeric limit unless the clinic sets one.",
        "No universal cut-off exists in the sources, so the limit is the clinic's policy.",
        "Checked when the dose is recorded."),
    "I10": Rule(
        "No double booking",
        "A clinician, a room and each person in a couple are never in two overlapping sessions, across every "
        "course and every clinic, even under concurrent requests from many processes. Adjacent sessions are fine; "
        "a cancelled session frees its slot.",
        "",
        "A therapist, a treatment room or a patient can only be in one place at a time.",
        "Checked when a session is booked or moved, in the same transaction as the calendars it holds."),
    "I11": Rule(
        "Hosting at a partner clinic",
        "A session takes place at a clinic other than the course's home clinic only under an agreed partnership "
        "covering that kind of session, in that clinic's own rooms and with its own clinicians; a medicine "
        "session only at a clinic with a prescriber. A partner-hosted medicine session is held only once the "
        "hosting clinic confirmed it.",
        "Each clinic consents to the kinds of session it hosts or sends; the partnership covers those both named.",
        "Therapy practices partner with ketamine clinics for the dosing sessions; each clinic answers for what "
        "happens on its premises.",
        "Checked when a session is booked or moved, and when a partner-hosted session is recorded held."),
}


def anchor(rule_id: str) -> str:
    """The fragment of a rule's section, the same on GitHub (its heading) and on `GET /rules`."""
    return re.sub(r"[^a-z0-9 -]", "", f"{rule_id} {RULES[rule_id].title}".lower()).replace(" ", "-")


def _problems_naming(rule_id: str) -> list[str]:
    from scheduler.http.problem_types import PROBLEM_TYPES

    return sorted(name for name, problem in PROBLEM_TYPES.items() if problem.rule == rule_id)


INTRO = ("The scheduler refuses a command that would break one of these rules with `409` and an RFC 9457 problem "
         "naming each rule it breaks (`violations`: every one, not only the first). The numbers are protocol "
         "settings of a course, chosen when it opens within the bounds given; published practice varies, which "
         "is why they are settings.")


def markdown() -> str:
    sections = []
    for rule_id, rule in RULES.items():
        problems = ", ".join(f"[`{name}`](problems/{name}.md)" for name in _problems_naming(rule_id))
        parts = [f"## {rule_id} {rule.title}", rule.rule]
        if rule.setting:
            parts.append(f"**Setting:** {rule.setting}")
        parts += [f"**Why:** {rule.why}", f"**Enforced:** {rule.enforced}"]
        if problems:
            parts.append(f"**Refused as:** {problems}")
        sections.append("\n\n".join(parts))
    return "# The clinical rules\n\n" + INTRO + "\n\n" + "\n\n".join(sections) + "\n"


def page() -> str:
    esc = html.escape

    def text(value: str) -> str:  # `code` marks as <code>
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(value))

    sections = []
    for rule_id, rule in RULES.items():
        problems = ", ".join(f"<a href=\"/problems/{name}\"><code>{name}</code></a>" for name in _problems_naming(rule_id))
        rows = [f"<h2 id=\"{anchor(rule_id)}\">{esc(rule_id)} {esc(rule.title)}</h2>", f"<p>{text(rule.rule)}</p>"]
        if rule.setting:
            rows.append(f"<p><strong>Setting:</strong> {text(rule.setting)}</p>")
        rows += [f"<p><strong>Why:</strong> {text(rule.why)}</p>",
                 f"<p><strong>Enforced:</strong> {text(rule.enforced)}</p>"]
        if problems:
            rows.append(f"<p><strong>Refused as:</strong> {problems}</p>")
        sections.append("".join(rows))
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>The clinical rules</title></head>"
            f"<body><h1>The clinical rules</h1><p>{text(INTRO)}</p>{''.join(sections)}"
            "<p><a href=\"/problems\">Every problem type</a></p></body></html>")
