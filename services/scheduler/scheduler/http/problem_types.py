"""Every problem `type` the API answers, and the page each one resolves to (`GET /problems/<name>`, and
`docs/problems/<name>.md` in the repository): what it means, the rule it names, and what to do about it.

`python -m scheduler.http.problem_types` writes the pages into docs/problems/ and the rules page into
docs/RULES.md (a test fails when they drift)."""

from __future__ import annotations

import argparse
import html
from dataclasses import dataclass
from pathlib import Path

from scheduler.http.rules import RULES, anchor
from scheduler.http.rules import markdown as rules_markdown

DOCS = Path(__file__).resolve().parents[4] / "docs" / "problems"


@dataclass(frozen=True)
class ProblemType:
    title: str
    status: int
    means: str
    fix: str
    rule: str | None = None  # the invariant (I1..I11) or state rule it names


_RULE_FIX = "Change the command so that it keeps the rule (the `violations` list says how it breaks it), or change the " \
            "course first; a course's protocol settings are chosen when it opens."

_BOOKING_FIX = "Choose another time, clinician or room (`GET /v1/clinics/{id}/booking-rules` lists the rules)."

_HOURS_FIX = "Choose another time, or book (reschedule) it anyway with `hours_override_reason`: the reason is kept " \
             "in the course's history."

PROBLEM_TYPES: dict[str, ProblemType] = {
    # The clinical rules (I1-I11, scheduler/http/rules.py): 409, with `violations` listing every rule broken.
    "phase-order": ProblemType(
        "Phases happen in order", 409, "A session of a later phase cannot be held before the milestone of the "
        "earlier phase: assessment (both partners eligible and a joint session held), then preparation (the "
        "protocol's individual and joint sessions), then medicine and integration cycles. A session counts for its "
        "phase only if it took place after the milestone it depends on was reached, by the time of the sessions "
        "that reached it (the end of the first joint assessment session; the end of the preparation session that "
        "completed the minimum; the end of the medicine session), whatever the order in which they were "
        "recorded.", _RULE_FIX, "I1"),
    "medicine-session-limit": ProblemType(
        "Too many medicine sessions", 409, "A course has at most the protocol's number of medicine sessions: "
        "1 to 6 (default 6), up to 8 for the `together` low-dose protocol. A medicine session that took place "
        "without a dose does not count.", _RULE_FIX, "I2"),
    "integration-minimum": ProblemType(
        "Integration minimum not reached", 409, "After each medicine session the protocol's minimum of integration "
        "sessions (default 4, bounds 1-8) is held before the next medicine session is held and before the course "
        "is completed.", _RULE_FIX, "I3"),
    "integration-window": ProblemType(
        "Outside the integration window", 409, "The first integration session after a medicine session starts "
        "within the window (default 48 h, bounds 24-120 h) of that session's end. A missed window blocks the next "
        "dose until a clinician acknowledges it with a reason "
        "(`POST /v1/courses/{id}/missed-windows/{session}/acknowledge`).", _RULE_FIX, "I4"),
    "medicine-interval": ProblemType(
        "Medicine sessions too close", 409, "Two medicine sessions start at least the protocol's interval apart "
        "(default 7 days, bounds 1-90).", _RULE_FIX, "I5"),
    "dose-approval": ProblemType(
        "No valid dose approval", 409, "Each dosed partner needs an approved dose approval for that medicine "
        "session, from a prescriber authorised at the hosting clinic, not expired (default 14 days, bounds 1-30), "
        "and the dose given is at most the approved dose; a dose given in several administrations stays within "
        "the approved total, each administration while the approval is valid. A partner the model doses whom the "
        "record leaves undosed is named too when they have no approved approval. An expired, declined or withdrawn "
        "approval, or one that expires before the session starts, can be requested again; moving a medicine "
        "session past an approval's expiry asks its prescriber again. A medicine session that took place without a "
        "dose (`not_dosed_reason`) leaves its approved doses usable, until they expire, at the next medicine session "
        "at the same clinic.", _RULE_FIX, "I6"),
    "dosing-model": ProblemType(
        "Dosing model", 409, "`taking_turns`: exactly one partner is dosed per medicine session, alternating; "
        "`together`: both partners are dosed.", _RULE_FIX, "I7"),
    "monitoring": ProblemType(
        "Monitoring", 409, "A medicine session records vitals before the dose (at most `pre_dose_vitals_minutes` "
        "before it: default 60, bounds 15-240), about 40 minutes after it (30-60) and at discharge (after that "
        "reading, at or before the discharge); discharge comes no earlier than the monitoring minimum (default 120 "
        "min, bounds 60-240) after the partner's last dose, and only with vitals marked acceptable. What the session "
        "records took place within it: every dose, reading and the discharge lies between its start and its "
        "recorded end (`ended_at`, else the discharge), give or take `record_tolerance_minutes` (default 15, "
        "bounds 0-60); an adverse event may be reported after the session, never dated before it. The integration "
        "window (I4) counts from the recorded end. A session recorded while monitoring continues has its discharge "
        "judged when it is recorded (`POST .../discharge`); until then no next dose is given and the course does "
        "not complete.", _RULE_FIX, "I8"),
    "pre-dose-vitals": ProblemType(
        "Pre-dose vitals", 409, "Pre-dose vitals are marked acceptable by the clinician; above the clinic's numeric "
        "limits (if it set any) the dose is refused unless the prescriber, on the day, let that very reading stand "
        "up to a ceiling, with a reason (`POST /v1/dose-approvals/{id}/vitals-override`).", _RULE_FIX, "I9"),
    "double-booking": ProblemType(
        "Double booking", 409, "A clinician, a room and each partner are never in two overlapping sessions, across "
        "every course and clinic (each has one calendar; the violation names the resource and the session it is "
        "already booked for). Adjacent sessions are fine; a cancelled session frees its time.",
        _RULE_FIX, "I10"),
    "hosting": ProblemType(
        "Hosting", 409, "A session is hosted at a clinic other than the home clinic only under a partnership both "
        "clinics agreed, with that clinic's own rooms and clinicians; medicine sessions only at a clinic with a "
        "prescriber; a partner-hosted medicine session is held only once the host confirmed it.", _RULE_FIX, "I11"),
    "rule-violations": ProblemType(
        "The command breaks several of the course's rules", 409, "More than one rule is broken; `violations` lists "
        "each with its invariant id and a detail (each id has its own page here).", _RULE_FIX),
    "rule-violation": ProblemType(
        "The command breaks a rule of the course", 409, "A state rule of the course that has no page of its own.",
        _RULE_FIX),
    "course-closed": ProblemType(
        "The course is closed", 409, "A completed or discontinued course accepts no more commands.",
        "Open a new course if the couple continues.", "course-closed"),
    "session-state": ProblemType(
        "The session is not in a state for this", 409, "The session was already held, missed or cancelled (or is "
        "not yet booked as the command needs).", "Read the course to see the session's status.", "session-state"),
    "session-started": ProblemType(
        "The session has started", 409, "A session is cancelled only before it starts; once it has started it "
        "took place (record it held) or did not (record it missed).",
        "Record the session held or missed instead (the server's clock, or X-Kact-Now under simulated time, says "
        "when it is).", "session-started"),
    "booking-in-the-past": ProblemType(
        "The session would start in the past", 409, "A session is booked, or moved, to start after the moment the "
        "clinic books it (the server's clock, or X-Kact-Now under simulated time). What took place is recorded on "
        "a session booked before it.", "Book a time that is still ahead; to record a session that already took "
        "place, it must have been booked before it started.", "booking-in-the-past"),
    "session-not-started": ProblemType(
        "The session has not started", 409, "What happened in a session is recorded once it has started.",
        "Record it after its start (the server's clock, or X-Kact-Now under simulated time).", "session-not-started"),
    "approval-decided": ProblemType(
        "The dose approval was already decided", 409, "A dose approval is decided once, by its prescriber.",
        "Request a new approval if the decision should change.", "approval-decided"),
    "booked-sessions": ProblemType(
        "Sessions are still booked", 409, "A course is completed only when no session is still booked.",
        "Record or cancel the booked sessions first.", "booked-sessions"),
    "session-confirmation": ProblemType(
        "Confirmation", 409, "Only a partner-hosted medicine session is confirmed or declined, by its host, once.",
        "Read the session's `confirmation`.", "session-confirmation"),
    # The clinics' hours (not clinical rules: a reason overrides them, and the course keeps it).
    "opening-hours": ProblemType(
        "Outside opening hours", 409, "The session falls outside the hosting clinic's opening hours, compared in "
        "local wall-clock time in the clinic's time zone (a session past midnight lies within the hours of both "
        "days). A clinic without opening hours is always open.", _HOURS_FIX, "opening-hours"),
    "closure": ProblemType(
        "The clinic is closed", 409, "The session falls on a day the hosting clinic is closed (its closures: "
        "`GET /v1/clinics/{id}/closures`).", _HOURS_FIX, "closure"),
    "working-hours": ProblemType(
        "Outside working hours", 409, "The session falls outside the working hours of one of its clinicians "
        "(local time in the hosting clinic's zone). A clinician without working hours is always available.",
        _HOURS_FIX, "working-hours"),
    # The hosting clinic's booking rules (`GET /v1/clinics/{id}/booking-rules`): no reason overrides them.
    "min-notice": ProblemType(
        "Too short notice", 409, "The hosting clinic books sessions at least its `min_notice_minutes` before they "
        "start (judged when the booking, move or hold is made).", _BOOKING_FIX, "min-notice"),
    "booking-horizon": ProblemType(
        "Beyond the booking horizon", 409, "The hosting clinic books sessions at most its `horizon_days` ahead.",
        _BOOKING_FIX, "booking-horizon"),
    "buffers": ProblemType(
        "Too close to another session", 409, "A clinician or room of the hosting clinic needs its buffer free "
        "before and after each kind of session (a medicine room's turnover, a therapist's notes): the gap between "
        "two sessions of one resource is at least the larger of the first one's buffer after and the second one's "
        "buffer before.", _BOOKING_FIX, "buffers"),
    "clinician-daily-limit": ProblemType(
        "The clinician's day is full", 409, "A clinician has at most the hosting clinic's "
        "`clinician_daily_limit` sessions (booked or held) on one local day of the clinic's zone.", _BOOKING_FIX,
        "clinician-daily-limit"),
    "clinician-weekly-limit": ProblemType(
        "The clinician's week is full", 409, "A clinician has at most the hosting clinic's "
        "`clinician_weekly_limit` sessions (booked or held) in one local week, Monday to Sunday.", _BOOKING_FIX,
        "clinician-weekly-limit"),
    "partner-medicine-daily-cap": ProblemType(
        "The host's day is full", 409, "A clinic hosts at most its `partner_medicine_daily_cap` medicine sessions "
        "(booked or held) for partner clinics on one local day.", _BOOKING_FIX, "partner-medicine-daily-cap"),
    "holds-cap": ProblemType(
        "Too many open holds", 409, "A partner clinic holds at most the hosting clinic's `max_partner_holds` slots "
        "there at once, so that no client hoards another clinic's calendar.", "Book or release a hold first "
        "(`POST /v1/courses/{id}/holds/{hold}/book` or `.../release`); holds also expire by themselves.",
        "holds-cap"),
    "hold-expired": ProblemType(
        "The hold expired", 409, "A hold keeps its slot until its `expires_at`; after that it is booked no more.",
        "Hold the slot again (`POST /v1/courses/{id}/holds`) or book it directly.", "hold-expired"),
    "no-plan": ProblemType(
        "No plan fits", 409, "The planner found no slot for one of the sessions the course needs (`item`, 0-based, "
        "and its `kind`) within 120 days of the session before it, under the course's rules, the calendars and "
        "the preferences given.", "Loosen the preferences (weekdays, start times, resources), plan fewer medicine "
        "sessions, or free the clinicians' calendars."),
    "version-conflict": ProblemType(
        "The course changed concurrently", 409, "Other writers kept changing the course while this command ran.",
        "Retry the command (with the same Idempotency-Key)."),
    # The HTTP contract.
    "invalid-input": ProblemType(
        "The request is not valid", 422, "The request is malformed or breaks an input rule: a field out of its "
        "bounds or format, an unknown field, an instant outside 2000-2099, a time zone that is not an IANA name, "
        "JSON nested more than 32 levels or carrying a NUL character, an end before its start, a clinic, room or "
        "clinician that is unknown (or not yours to name). `errors` says which part.", "Fix the request; the OpenAPI document (`/schema/openapi.json`) states every bound."),
    "body-too-large": ProblemType(
        "Request body too large", 413, "The body is larger than the server accepts (KACT_MAX_BODY_BYTES, 1 MiB "
        "by default); it was refused before it was read whole.", "Send a smaller body."),
    "unsupported-media-type": ProblemType(
        "Unsupported media type", 415, "Request bodies are JSON.", "Send `Content-Type: application/json`."),
    "unauthorized": ProblemType(
        "Unauthorized", 401, "No API key, or one that is not valid (unknown or revoked).",
        "Send `Authorization: Bearer <api key>`; a clinic's keys are issued by the operator or the clinic."),
    "forbidden": ProblemType(
        "Forbidden", 403, "The key's principal may see the resource but not do this: a prescriber opening a course, "
        "a clinic asking for the dose-approval queue, anyone but the operator onboarding a clinic. (A principal "
        "that may not see the resource gets 404 instead: a clinic deciding a dose is told no such approval.)",
        "Use the key of the principal who does this."),
    "not-found": ProblemType(
        "Not found", 404, "No such resource, or none this principal may see: another clinic's course does not "
        "exist for you.",
        "Check the id, and that the key belongs to the clinic that owns the resource."),
    "method-not-allowed": ProblemType(
        "Method not allowed", 405, "The path exists but not with this method; `Allow` lists its methods.",
        "Use one of the methods in `Allow`."),
    "idempotency-key-reused": ProblemType(
        "Idempotency-Key reused", 422, "This Idempotency-Key was used (within its 24 h) with a different request "
        "(compared as parsed JSON).", "Use a new key for a new request."),
    "idempotency-in-progress": ProblemType(
        "Request in progress", 409, "A request with this Idempotency-Key is still running (or died less than 30 s "
        "ago).", "Retry after `Retry-After` seconds with the same key: you get its response."),
    "already-created": ProblemType(
        "Already created", 409, "An earlier attempt of this request (the same API key, Idempotency-Key and body) "
        "created the resource `detail` names, and its answer was lost: it was answered 503 outcome-unknown, or the "
        "server stopped before storing the answer, and the retry came after the key's 30 s claim ran out. The ids "
        "of what a request creates derive from its Idempotency-Key, so the request is not carried out twice. (The "
        "same key and body sent again after the key expired, 24 h, is the same request too.)",
        "Read the resource (`GET` it by the id in `detail`); a key or signing secret shown only when it was created "
        "was lost with that answer: issue a new one."),
    "rate-limited": ProblemType(
        "Too many requests", 429, "This API key sent more requests than its rate limit allows (`RateLimit-Policy` "
        "says the limit), a calendar feed was fetched more often than its limit (a burst of 10, then one every 5 "
        "seconds), or this address asked for too many keys or calendar feeds that do not exist.",
        "Wait `Retry-After` seconds; spread requests out."),
    "unavailable": ProblemType(
        "Service unavailable", 503, "The database is unreachable; nothing of the request was saved.",
        "Retry after `Retry-After` seconds."),
    "outcome-unknown": ProblemType(
        "Outcome unknown", 503, "The connection to the database broke while the command was being saved, and the "
        "database stayed unreachable: the command may or may not have been saved.",
        "Read the course before sending it again, or retry with the same Idempotency-Key."),
    "already-redriven": ProblemType(
        "Already redriven", 409, "The dead letter was already processed again.", "Nothing to do."),
    "delivery-not-failed": ProblemType(
        "Only a failed delivery is redriven", 409, "The delivery is pending or was delivered.", "Nothing to do."),
    "webhook-disabled": ProblemType(
        "The webhook is disabled", 409, "A delivery of a disabled webhook is not redriven.",
        "Register the webhook again."),
    "too-many-keys": ProblemType(
        "Too many active keys", 409, "A clinic or prescriber holds at most 10 keys that are not revoked.",
        "Revoke a key you no longer use (`DELETE /v1/keys/{id}`), then issue the new one."),
    "too-many-feeds": ProblemType(
        "Too many calendar feeds", 409, "A clinician or room has at most 10 calendar feeds that are not revoked.",
        "Revoke a feed no calendar subscribes to any more (`DELETE .../calendar-feeds/{id}`), then create the new "
        "one."),
    "http-error": ProblemType(
        "HTTP error", 400, "Another HTTP-level refusal; `status` and `detail` say which.", "See `detail`."),
    "internal": ProblemType(
        "Internal error", 500, "An unexpected error; it was logged with the request.",
        "Report it with the time of the request; the request was not applied unless the course shows it."),
}


def markdown(name: str, problem: ProblemType) -> str:
    rule = ""
    if problem.rule in RULES:
        rule = f"\n**Rule:** [{problem.rule} {RULES[problem.rule].title}](../RULES.md#{anchor(problem.rule)})\n"
    elif problem.rule:
        rule = f"\n**Rule:** {problem.rule}\n"
    return (f"# {problem.title}\n\n`type: /problems/{name}` · HTTP {problem.status}\n{rule}\n"
            f"{problem.means}\n\n**What to do:** {problem.fix}\n")


def page(name: str, problem: ProblemType) -> str:
    esc = html.escape
    rule = ""
    if problem.rule in RULES:
        rule = (f"<p><strong>Rule:</strong> <a href=\"/rules#{anchor(problem.rule)}\">{esc(problem.rule)} "
                f"{esc(RULES[problem.rule].title)}</a></p>")
    elif problem.rule:
        rule = f"<p><strong>Rule:</strong> {esc(problem.rule)}</p>"
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(problem.title)}</title>"
            f"</head><body><h1>{esc(problem.title)}</h1><p><code>type: /problems/{esc(name)}</code> · HTTP "
            f"{problem.status}</p>{rule}<p>{esc(problem.means)}</p><p><strong>What to do:</strong> "
            f"{esc(problem.fix)}</p><p><a href=\"/problems\">Every problem type</a></p></body></html>")


def index_page() -> str:
    items = "".join(f"<li><a href=\"/problems/{name}\">{html.escape(p.title)}</a> ({p.status}"
                    f"{', ' + p.rule if p.rule else ''})</li>" for name, p in sorted(PROBLEM_TYPES.items()))
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Problem types</title></head>"
            f"<body><h1>Problem types of the kact API</h1><ul>{items}</ul></body></html>")


def write_docs(target: Path = DOCS) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("*.md"):
        if stale.stem not in PROBLEM_TYPES and stale.name != "README.md":
            stale.unlink()
    for name, problem in PROBLEM_TYPES.items():
        (target / f"{name}.md").write_text(markdown(name, problem))
    rows = "\n".join(f"| [`{name}`]({name}.md) | {p.status} | {p.rule or ''} | {p.title} |"
                     for name, p in sorted(PROBLEM_TYPES.items()))
    (target.parent / "RULES.md").write_text(rules_markdown())
    (target / "README.md").write_text(
        "# Problem types\n\nEvery error of the API is an RFC 9457 problem whose `type` is `/problems/<name>`; the "
        "server serves each page at that path. The clinical rules (I1-I11) are explained in "
        "[`../RULES.md`](../RULES.md) (served at `/rules`).\n\n| type | status | rule | title |\n|---|---|---|---|\n"
        f"{rows}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scheduler.http.problem_types", description=__doc__)
    parser.add_argument("target", nargs="?", type=Path, default=DOCS)
    write_docs(parser.parse_args(argv).target)


if __name__ == "__main__":
    main()
