"""An independent judge of a course: re-derives the rules of shared/DOMAIN.md from the stored event stream alone.

`check_events(events)` takes the domain events of ONE course, in stream order (the objects the aggregate
triggered, or the same events read back from an event store), and returns every rule it finds broken.
It never asks the aggregate anything: it keeps its own little model of sessions, approvals and milestones,
built only from the events' names and attributes, so a bug in `Course`'s own checks cannot hide itself.

Rule ids are DOMAIN.md's (I1..I10), plus:
  - "closed":        an event after Completed / Discontinued ("a closed course accepts no more commands");
  - "milestone":     a milestone recorded twice, without its conditions, or missing once its conditions hold
                     (Assessed, Prepared, Dosed, Integrated), and "ineligible ends the course";
  - "session-state": a session held / cancelled / missed / rescheduled that was not booked, or an unknown id;
  - "session-confirmation": a session confirmed / declined by a clinic that does not host it, that needed no
                     confirmation (only a medicine session hosted by another clinic than the home clinic does),
                     that was not booked, decided the same way twice, or declined without a reason;
  - "stream":        the stream itself is malformed (not opened first, versions not consecutive).

Time. Commands carry a `now` that the events do not store, so the checker keeps a lower bound of the clock:
the latest instant the stream proves has passed (a session recorded held or missed has started, an approval
was requested / decided at its time, a missed window's deadline has passed). This assumes the clock never runs
backwards, which holds for a real clock and for the stateful test's clock.

Readings of DOMAIN.md that go beyond "what the aggregate happens to check":
  - sessions are judged by when they took place, not only by when they were recorded: the integration sessions
    that let the next medicine session happen (I3) are those that took place before it;
  - the couple is in a medicine session until discharge, so a discharge later than the booked end must not run
    into another of the couple's sessions (I10);
  - a move (of the first integration session, or of the medicine session and so its window) may not leave the
    first integration session outside the window, unless the window was already recorded missed (I4).

What the stream cannot show is not judged: whether a prescriber is authorised at the hosting clinic (I6) and
the hosting rules (I11) depend on directory facts that are not stored in the course's events, and I10 for
clinicians and rooms spans several courses. The decider of an approval is read from the event's `by`, which the
command API sets to "prescriber:<id>" for the deciding prescriber.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

PARTNERS = ("a", "b")
ACTIVE = ("booked", "held")
# "about 40 min after" the dose (DOMAIN.md I8); the same tolerance the clinic's protocol documents.
POST_DOSE_FROM = timedelta(minutes=30)
POST_DOSE_UNTIL = timedelta(minutes=60)
# DOMAIN.md's bounds for each protocol setting, with the rule each one belongs to.
PROTOCOL_BOUNDS = {
    "max_medicine_sessions": ("I2", 1, 6),
    "min_integration_sessions": ("I3", 1, 8),
    "integration_window_hours": ("I4", 24, 120),
    "min_medicine_interval_days": ("I5", 1, 90),
    "approval_valid_days": ("I6", 1, 30),
    "min_monitoring_minutes": ("I8", 60, 240),
    "pre_dose_vitals_minutes": ("I8", 15, 240),
    "record_tolerance_minutes": ("I8", 0, 60),
}
# DOMAIN.md's defaults of the settings a course opened before they existed does not record.
LATER_SETTINGS = {"pre_dose_vitals_minutes": 60, "record_tolerance_minutes": 15}
LOW_DOSE_MAX_MEDICINE_SESSIONS = 8


def _utc(value: Any) -> Any:
    """Every instant in UTC, recursively: DOMAIN.md measures windows in elapsed time, and Python adds a timedelta
    to a datetime in an IANA zone in wall-clock time, so the judge never does arithmetic in a local zone."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value
    if isinstance(value, dict):
        return {k: _utc(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_utc(v) for v in value]
    return value


def _over(reading: dict[str, Any], limit: dict[str, Any]) -> bool:
    """A reading above a limit or ceiling (systolic, diastolic, and the heart rate where it sets one)."""
    over = (reading.get("systolic") or 0) > limit["systolic"] or (reading.get("diastolic") or 0) > limit["diastolic"]
    return over or (limit.get("heart_rate") is not None and (reading.get("heart_rate") or 0) > limit["heart_rate"])


@dataclass(frozen=True)
class Breach:
    rule: str
    position: int  # index of the offending event in the stream (len(stream) for "missing at the end")
    event: str
    message: str
    site: int = 0  # the line of this module that judged it: tells apart different breaches of one rule

    @property
    def code(self) -> str:
        return f"{self.rule}@{self.site}"

    def __str__(self) -> str:
        return f"{self.rule} at #{self.position} ({self.event}): {self.message}"


@dataclass
class _Session:
    id: str
    kind: str
    partners: frozenset[str]
    start: datetime
    end: datetime
    follows: str | None
    status: str = "booked"
    record: dict[str, Any] | None = None
    clinic_id: str = ""
    confirmation: str = "not_needed"  # | pending | confirmed | declined

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def discharged_at(self) -> datetime | None:
        return (self.record or {}).get("discharged_at")

    @property
    def awaiting(self) -> bool:
        """Recorded while monitoring continued: its discharge comes later."""
        return self.status == "held" and (self.record or {}).get("monitoring") == "continues"

    @property
    def not_dosed(self) -> bool:
        """A medicine session that took place without a dose (its record says why)."""
        return self.status == "held" and bool((self.record or {}).get("not_dosed"))

    @property
    def ended_at(self) -> datetime | None:
        """When the clinic says the session actually ended, if it said."""
        return (self.record or {}).get("ended_at")

    @property
    def finished(self) -> datetime:
        """When the session ended: as recorded once held, else at discharge, else at its booked end."""
        return self.ended_at or self.discharged_at or self.end

    @property
    def occupied_until(self) -> datetime:
        """The couple is in the session until its booked end, or until it ended (was discharged) if later."""
        return max(self.end, self.finished)


@dataclass
class _Approval:
    id: str
    session_id: str
    partner: str
    prescriber_id: str
    requested_mg: float
    status: str = "pending"
    approved_mg: float | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    override: str | None = None  # a blanket override, as decisions before per-reading overrides gave
    overrides: dict[datetime, dict[str, Any]] = field(default_factory=dict)  # reading time -> the latest ceiling


@dataclass
class _Judge:
    breaches: list[Breach] = field(default_factory=list)
    position: int = 0
    event_name: str = ""
    opened: bool = False
    originator_id: Any = None
    version: int = 0
    model: str = ""
    home_clinic_id: str = ""
    first_dosed: str = "a"
    protocol: dict[str, Any] = field(default_factory=dict)
    closed: str | None = None
    screenings: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    approvals: dict[str, _Approval] = field(default_factory=dict)
    assessed: bool = False
    prepared: bool = False
    dosed: list[str] = field(default_factory=list)
    integrated: set[str] = field(default_factory=set)
    missed_windows: dict[str, bool] = field(default_factory=dict)  # medicine id -> acknowledged
    clock: datetime | None = None  # a lower bound of "now"
    occurred: datetime | None = None  # when the event being judged happened, if it says (occurred_at)
    expect_dosed: str | None = None  # a medicine session was just held: its Dosed must come next
    expect_discontinued: bool = False  # a partner was screened ineligible: Discontinued must come next

    # ------------------------------------------------------------------ helpers

    def breach(self, rule: str, message: str) -> None:
        site = sys._getframe(1).f_lineno
        self.breaches.append(Breach(rule, self.position, self.event_name, message, site))

    def saw_time(self, at: datetime | None) -> None:
        if isinstance(at, datetime) and (self.clock is None or at > self.clock):
            self.clock = at

    def p(self, name: str) -> Any:
        return self.protocol.get(name)

    def active(self, kind: str | None = None) -> list[_Session]:
        return [s for s in self.sessions.values() if s.active and (kind is None or s.kind == kind)]

    def counted_medicine(self) -> list[_Session]:
        """The medicine sessions the protocol counts (I2, I5): booked, or held with a dose."""
        return [s for s in self.active("medicine") if not s.not_dosed]

    def covers(self, approval: _Approval, session: _Session) -> bool:
        """A dose at the session may be given under the approval: asked for it, or approved for an earlier
        medicine session at the same clinic that took place without a dose and not used by a dose since."""
        if approval.session_id == session.id:
            return True
        source = self.sessions.get(approval.session_id)
        used = any(d.get("approval_id") == approval.id for s in self.sessions.values()
                   if s.status == "held" and s.id != session.id for d in (s.record or {}).get("doses") or [])
        return (source is not None and source.not_dosed and approval.status == "approved"
                and source.clinic_id == session.clinic_id and source.start < session.start and not used)

    def deadline(self, medicine: _Session) -> datetime:
        return medicine.finished + timedelta(hours=self.p("integration_window_hours"))

    def integrations_held(self, medicine_id: str) -> list[_Session]:
        return [
            s for s in self.sessions.values()
            if s.kind == "integration" and s.status == "held" and s.follows == medicine_id
        ]

    def window_kept(self, medicine: _Session) -> bool:
        deadline = self.deadline(medicine)
        return any(s.start <= deadline for s in self.integrations_held(medicine.id))

    def assessed_conditions(self) -> bool:
        eligible = all(self.screenings.get(p) == "eligible" for p in PARTNERS)
        joint = any(
            s.kind == "assessment" and s.status == "held" and s.partners == frozenset(PARTNERS)
            for s in self.sessions.values()
        )
        return eligible and joint

    def prepared_conditions(self) -> bool:
        return self.prepared_time() is not None

    def assessed_time(self) -> datetime | None:
        """When a joint assessment session had first been held to its end (the assessment's time of occurrence)."""
        ends = [s.finished for s in self.sessions.values()
                if s.kind == "assessment" and s.status == "held" and s.partners == frozenset(PARTNERS)]
        return min(ends) if ends else None

    def prepared_time(self) -> datetime | None:
        """The earliest moment by which the preparation minimum had taken place, counting only preparation
        sessions that started once the assessment had taken place."""
        assessed = self.assessed_time()
        if assessed is None:
            return None
        held = [s for s in self.sessions.values()
                if s.kind == "preparation" and s.status == "held" and s.start >= assessed]
        for moment in sorted({s.finished for s in held}):
            done = [s for s in held if s.finished <= moment]
            joint = sum(1 for s in done if s.partners == frozenset(PARTNERS))
            individual = {p: sum(1 for s in done if s.partners == frozenset({p})) for p in PARTNERS}
            if joint >= self.p("joint_preparation_sessions") and all(
                    n >= self.p("individual_preparation_sessions") for n in individual.values()):
                return moment
        return None

    def known_session(self, session_id: str) -> _Session | None:
        session = self.sessions.get(session_id)
        if session is None:
            self.breach("session-state", f"no session {session_id} was booked")
        return session

    def must_be_booked(self, session: _Session) -> None:
        if session.status != "booked":
            self.breach("session-state", f"session {session.id} is {session.status}, not booked")

    # ------------------------------------------------------------ calendar rules

    def check_calendar(self, session: _Session) -> None:
        """I10 (couple) and I5 for a session just booked or moved; the session is active."""
        self.check_overlap(session)
        if session.kind == "medicine":
            interval = timedelta(days=self.p("min_medicine_interval_days"))
            for other in self.counted_medicine():
                if other.id != session.id and abs(other.start - session.start) < interval:
                    self.breach(
                        "I5",
                        f"medicine sessions {session.id} and {other.id} start less than "
                        f"{self.p('min_medicine_interval_days')} days apart",
                    )

    def check_overlap(self, session: _Session) -> None:
        for other in self.active():
            if other.id != session.id and other.start < session.occupied_until and session.start < other.occupied_until:
                self.breach(
                    "I10",
                    f"sessions {session.id} [{session.start.isoformat()}, {session.occupied_until.isoformat()}) and "
                    f"{other.id} [{other.start.isoformat()}, {other.occupied_until.isoformat()}) overlap",
                )

    def first_integration(self, medicine_id: str) -> _Session | None:
        following = [s for s in self.active("integration") if s.follows == medicine_id]
        return min(following, key=lambda s: (s.start, s.id)) if following else None

    def window_covered(self, medicine_id: str | None) -> bool:
        """Whether the first active integration session after this medicine session starts in its window."""
        medicine = self.sessions.get(medicine_id or "")
        first = self.first_integration(medicine_id or "")
        return medicine is None or first is None or first.start <= self.deadline(medicine)

    def check_window(self, medicine_id: str | None, moved: str) -> None:
        medicine = self.sessions.get(medicine_id or "")
        first = self.first_integration(medicine_id or "")
        if medicine is not None and medicine.id in self.missed_windows:
            return  # the window was recorded missed: late integration sessions are the way back (DOMAIN.md I4)
        if medicine is not None and first is not None and first.start > self.deadline(medicine):
            self.breach(
                "I4",
                f"after {moved}, the first integration session {first.id} after medicine session {medicine.id} "
                f"starts {first.start.isoformat()}, after its window closed {self.deadline(medicine).isoformat()}",
            )

    # ------------------------------------------------------------- the events

    def run(self, events: list[Any], ended: bool = True) -> list[Breach]:
        for position, event in enumerate(events):
            self.position, self.event_name = position, type(event).__name__
            self.stream_rules(event)
            handler = getattr(self, "on_" + self.event_name, None)
            if handler is None:
                self.breach("stream", f"unknown event type {self.event_name}")
            elif self.opened or self.event_name == "Created":
                handler(event)
        self.position, self.event_name = len(events), "(end of stream)"
        if ended:
            self.at_end()
        return self.breaches

    def stream_rules(self, event: Any) -> None:
        name = self.event_name
        self.occurred = _utc(getattr(event, "occurred_at", None))  # by the clock of the command that recorded it
        if self.position == 0:
            if name != "Created":
                self.breach("stream", "a course's stream starts with its Created (opened) event")
        elif name == "Created":
            self.breach("stream", "the course is opened twice")
        if self.originator_id is not None and getattr(event, "originator_id", None) != self.originator_id:
            self.breach("stream", "the event belongs to another course")
        version = getattr(event, "originator_version", None)
        if version != self.version + 1:
            self.breach("stream", f"version {version} follows version {self.version}")
        self.version = version if isinstance(version, int) else self.version + 1
        if self.closed is not None and self.position > 0:
            self.breach("closed", f"the course was {self.closed}; no event may follow")
        if self.expect_dosed is not None and not (name == "Dosed" and event.session_id == self.expect_dosed):
            self.breach("milestone", f"medicine session {self.expect_dosed} was held but Dosed was not recorded")
            self.expect_dosed = None
        if self.expect_discontinued and name != "Discontinued":
            self.breach("milestone", "a partner was screened ineligible but the course was not discontinued")
            self.expect_discontinued = False

    def on_Created(self, event: Any) -> None:
        self.opened = True
        self.originator_id = event.originator_id
        self.model = event.model
        self.home_clinic_id = event.home_clinic_id
        self.first_dosed = event.first_dosed
        self.protocol = {**LATER_SETTINGS, **dict(event.protocol)}
        if self.model not in ("taking_turns", "together"):
            self.breach("I7", f"unknown model {self.model!r}")
        if self.first_dosed not in PARTNERS or set(event.partners) != set(PARTNERS):
            self.breach("I7", "a course names partners 'a' and 'b' and which of them is dosed first")
        for name, (rule, low, high) in PROTOCOL_BOUNDS.items():
            if name == "max_medicine_sessions" and self.protocol.get("low_dose") and self.model == "together":
                high = LOW_DOSE_MAX_MEDICINE_SESSIONS
            value = self.protocol.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                self.breach(rule, f"protocol {name}={value!r} is outside {low}..{high}")
        individual, joint = self.p("individual_preparation_sessions") or 0, self.p("joint_preparation_sessions") or 0
        if individual < 1 or joint < 2:
            self.breach("I1", "preparation needs at least one individual session per partner and two joint ones")

    def on_ScreeningRecorded(self, event: Any) -> None:
        if self.assessed:
            self.breach("I1", "a screening was recorded after the course was Assessed")
        if event.partner not in PARTNERS or event.result not in ("eligible", "ineligible"):
            self.breach("I1", f"malformed screening {event.partner!r}: {event.result!r}")
        self.screenings[event.partner] = event.result
        if event.result == "ineligible":
            self.expect_discontinued = True

    def on_SessionBooked(self, event: Any) -> None:
        data = event.session
        sid = data["id"]
        if sid in self.sessions:
            self.breach("session-state", f"session id {sid} is booked twice")
        session = _Session(
            id=sid,
            kind=data["kind"],
            partners=frozenset(data["partners"]),
            start=_utc(data["starts_at"]),
            end=_utc(data["ends_at"]),
            follows=data.get("follows"),
            clinic_id=data.get("clinic_id", ""),
        )
        if session.kind == "medicine" and session.clinic_id != self.home_clinic_id:
            session.confirmation = "pending"  # the partner clinic hosting it is asked to confirm
        self.sessions[sid] = session
        if not session.start < session.end:
            self.breach("session-state", f"session {sid} ends before it starts")
        if self.occurred is not None and session.start < self.occurred:
            self.breach("booking-in-the-past", f"session {sid} starting {session.start.isoformat()} was booked "
                                               f"{self.occurred.isoformat()}")
        if session.kind in ("medicine", "integration") and session.partners != frozenset(PARTNERS):
            self.breach("I7" if session.kind == "medicine" else "I1", f"a {session.kind} session is joint")
        self.check_calendar(session)
        if session.kind == "medicine" and len(self.counted_medicine()) > self.p("max_medicine_sessions"):
            self.breach(
                "I2",
                f"{len(self.counted_medicine())} medicine sessions are active; the protocol allows "
                f"{self.p('max_medicine_sessions')}",
            )
        if session.kind == "integration":
            self.check_integration_follows(session)
            if self.first_integration(session.follows or "") is session:
                # I4: booking the first integration session outside the window is refused.
                self.check_window(session.follows, f"booking {session.id}")

    def check_integration_follows(self, session: _Session) -> None:
        medicine = self.sessions.get(session.follows or "")
        if medicine is None or medicine.kind != "medicine" or medicine.not_dosed:
            self.breach("I1", f"integration session {session.id} follows no medicine session with a dose")
        elif session.start < medicine.start:
            self.breach("I1", f"integration session {session.id} starts before medicine session {medicine.id}")

    def on_SessionRescheduled(self, event: Any) -> None:
        session = self.known_session(event.session_id)
        if session is None:
            return
        self.must_be_booked(session)
        # I4: a move may not take an integration window from covered to empty (the medicine session moved, so
        # its window moved; or the first integration session moved), nor place a new first session outside it.
        affected = {session.id if session.kind == "medicine" else session.follows}
        if session.kind == "integration":
            affected.add(event.follows)
        affected.discard(None)
        covered = {m: self.window_covered(m) for m in affected}
        if self.occurred is not None and session.start <= self.occurred:
            self.breach("session-started", f"session {session.id} was moved {self.occurred.isoformat()}, after it "
                                           f"started ({session.start.isoformat()})")
        session.start, session.end = _utc(event.starts_at), _utc(event.ends_at)
        if self.occurred is not None and session.start < self.occurred:
            self.breach("booking-in-the-past", f"session {session.id} was moved {self.occurred.isoformat()} to "
                                               f"{session.start.isoformat()}")
        if not session.start < session.end:
            self.breach("session-state", f"session {session.id} ends before it starts")
        if session.kind == "integration":
            session.follows = event.follows
        if session.confirmation != "not_needed":
            session.confirmation = "pending"  # a new time asks the host again
        self.check_calendar(session)
        for medicine_id in sorted(affected):
            first = self.first_integration(medicine_id)
            if covered[medicine_id] or first is session:
                self.check_window(medicine_id, f"moving {session.id}")
        if session.kind == "integration":
            self.check_integration_follows(session)
        if session.kind == "medicine":
            for integration in self.active("integration"):
                if integration.follows == session.id:
                    self.check_integration_follows(integration)

    def judge_confirmation(self, event: Any, decision: str) -> None:
        session = self.known_session(event.session_id)
        if session is None:
            return
        if session.status != "booked":
            self.breach("session-confirmation", f"session {session.id} is {session.status}, not booked")
        if event.clinic_id != session.clinic_id:
            self.breach("session-confirmation", f"session {session.id} is hosted by {session.clinic_id}, "
                        f"not by {event.clinic_id}")
        if getattr(event, "by", None) != f"clinic:{session.clinic_id}":
            self.breach("session-confirmation", f"session {session.id} was {decision} by {event.by}, not its host")
        if session.confirmation == "not_needed":
            self.breach("session-confirmation", f"session {session.id} needed no confirmation")
        elif session.confirmation == decision:
            self.breach("session-confirmation", f"session {session.id} is {decision} twice")
        if decision == "declined" and not str(event.reason).strip():
            self.breach("session-confirmation", f"session {session.id} is declined without a reason")
        session.confirmation = decision

    def on_SessionConfirmed(self, event: Any) -> None:
        self.judge_confirmation(event, "confirmed")

    def on_SessionDeclined(self, event: Any) -> None:
        self.judge_confirmation(event, "declined")

    def on_SessionCancelled(self, event: Any) -> None:
        session = self.known_session(event.session_id)
        if session is not None:
            self.must_be_booked(session)
            if self.occurred is not None and session.start <= self.occurred:
                self.breach("session-started", f"session {session.id} was cancelled {self.occurred.isoformat()}, "
                                               f"after it started ({session.start.isoformat()})")
            session.status = "cancelled"

    def on_SessionMissed(self, event: Any) -> None:
        session = self.known_session(event.session_id)
        if session is not None:
            self.must_be_booked(session)
            self.saw_time(session.start)
            session.status = "missed"

    def on_SessionHeld(self, event: Any) -> None:
        session = self.known_session(event.session_id)
        if session is None:
            return
        self.must_be_booked(session)
        self.saw_time(session.start)
        record = _utc(dict(event.record or {}))
        if session.kind == "preparation" and not self.assessed:
            self.breach("I1", f"preparation session {session.id} was held before the course was Assessed")
        assessed = self.assessed_time()
        if session.kind == "preparation" and self.assessed and assessed is not None and session.start < assessed:
            self.breach("I1", f"preparation session {session.id} took place {session.start.isoformat()}, before the "
                              f"assessment had ({assessed.isoformat()})")
        if session.kind == "integration" and session.follows not in self.dosed:
            self.breach(
                "I1", f"integration session {session.id} was held before medicine session {session.follows} was Dosed"
            )
        medicine = self.sessions.get(session.follows or "")
        if session.kind == "integration" and medicine is not None and session.start < medicine.finished:
            self.breach("I1", f"integration session {session.id} took place before {medicine.id} ended")
        if session.kind != "medicine" and any(record.get(k) for k in ("doses", "vitals", "discharged_at")):
            self.breach("I8", f"{session.kind} session {session.id} records doses or vitals")
        awaiting = session.kind == "medicine" and record.get("monitoring") == "continues"
        if record.get("not_dosed") is not None and (session.kind != "medicine" or not str(record["not_dosed"]).strip()
                                                    or record.get("doses") or record.get("discharged_at")
                                                    or awaiting):
            self.breach("I8", f"{session.id} is recorded not dosed, but not as a medicine session without a dose "
                              "and with a reason")
        if session.kind == "medicine":
            for other in self.sessions.values():
                if other.id != session.id and other.awaiting:
                    self.breach("I8", f"medicine session {session.id} was held while {other.id} awaited discharge")
            if record.get("not_dosed"):  # took place in order, and what it records within it; nothing is dosed
                self.judge_phase_of_medicine(session)
                self.judge_span(session, record, None)
            else:
                self.judge_medicine(session, record)
                if not awaiting:  # Dosed comes with the discharge
                    self.expect_dosed = session.id
        ended = record.get("ended_at")
        if isinstance(ended, datetime) and ended <= session.start:
            self.breach("I8", f"session {session.id} ended {ended.isoformat()}, before it started")
        session.status, session.record = "held", record
        if session.occupied_until > session.end:
            # The couple stays until the session ended (discharge): it now occupies the calendar until then.
            self.check_overlap(session)

    def judge_phase_of_medicine(self, session: _Session) -> None:
        """I1: a medicine session takes place once the preparation had."""
        if not self.prepared:
            self.breach("I1", f"medicine session {session.id} was held before the course was Prepared")
        prepared = self.prepared_time()
        if self.prepared and prepared is not None and session.start < prepared:
            self.breach("I1", f"medicine session {session.id} took place {session.start.isoformat()}, before the "
                              f"preparation had ({prepared.isoformat()})")

    def judge_medicine(self, session: _Session, record: dict[str, Any]) -> None:
        """I1, I3, I4, I6, I7, I8, I9 for a medicine session being recorded as held."""
        self.judge_phase_of_medicine(session)
        minimum = self.p("min_integration_sessions")
        doses_now = [d["at"] for d in record.get("doses") or [] if isinstance(d.get("at"), datetime)]
        if self.dosed and doses_now:
            # I5 by the doses actually given: this session's first one the protocol's days after the last's.
            last = self.sessions[self.dosed[-1]]
            before = [d["at"] for d in (last.record or {}).get("doses") or [] if isinstance(d.get("at"), datetime)]
            gap = min(doses_now) - min(before or [last.start])
            if timedelta(0) <= gap < timedelta(days=self.p("min_medicine_interval_days")):
                self.breach("I5", f"medicine session {session.id} doses {gap} after {last.id} did")
        if self.dosed:
            previous = self.sessions[self.dosed[-1]]
            held = self.integrations_held(previous.id)
            if len(held) < minimum:
                self.breach(
                    "I3",
                    f"medicine session {session.id} was held after {len(held)} integration sessions of "
                    f"{previous.id}; {minimum} are required",
                )
            before = [s for s in held if s.start < session.start]
            if len(held) >= minimum and len(before) < minimum:
                self.breach(
                    "I3",
                    f"medicine session {session.id} took place {session.start.isoformat()}, when only "
                    f"{len(before)} integration sessions of {previous.id} (which took place "
                    f"{previous.start.isoformat()}) had taken place; {minimum} are required",
                )
        for earlier_id in self.dosed:
            earlier = self.sessions[earlier_id]
            recorded = earlier_id in self.missed_windows
            overdue = self.clock is not None and self.clock > self.deadline(earlier) and not self.window_kept(earlier)
            if (recorded or overdue) and not self.missed_windows.get(earlier_id, False):
                self.breach(
                    "I4",
                    f"the integration window of {earlier_id} closed {self.deadline(earlier).isoformat()} without an "
                    f"integration session and was not acknowledged before medicine session {session.id}",
                )
        doses = list(record.get("doses") or [])
        vitals = list(record.get("vitals") or [])
        dosed_partners = [d.get("partner") for d in doses]
        if self.model == "together":
            expected = list(PARTNERS)
        else:
            other = "b" if self.first_dosed == "a" else "a"
            expected = [self.first_dosed if len(self.dosed) % 2 == 0 else other]
        if sorted(set(dosed_partners)) != sorted(expected):  # a dose may come in several administrations
            self.breach(
                "I7",
                f"the {self.model} model doses {expected} at its medicine session #{len(self.dosed) + 1}; "
                f"{session.id} recorded doses for {dosed_partners}",
            )
        discharged_at = record.get("discharged_at")
        awaiting = record.get("monitoring") == "continues"
        if awaiting and (discharged_at is not None or record.get("ended_at") is not None):
            self.breach("I8", f"{session.id} awaits its discharge but records one")
        if not isinstance(discharged_at, datetime):
            if not awaiting:
                self.breach("I8", f"medicine session {session.id} records no discharge time")
            discharged_at = None
        self.judge_span(session, record, discharged_at, open_ended=awaiting)
        # A partner's dose may come in several administrations: each under a valid approval, all of them within
        # the approved amount; the readings go by the first administration, discharge by the last.
        by_partner: dict[Any, list[dict[str, Any]]] = {}
        for dose in doses:
            by_partner.setdefault(dose.get("partner"), []).append(dose)
        for given in by_partner.values():
            timed = sorted((d for d in given if isinstance(d.get("at"), datetime)), key=lambda d: d["at"])
            last = timed[-1]["at"] if timed else None
            total = sum(d["mg"] for d in given if isinstance(d.get("mg"), (int, float)))
            for dose in given:
                self.judge_dose(session, dose, vitals, discharged_at, last, readings=dose is (timed or given)[0],
                                total_mg=total)

    def judge_discharge(self, session: _Session, partner: Any, first_dose_at: datetime, last_dose_at: datetime,
                        mine: list[dict[str, Any]], discharged_at: datetime) -> None:
        """I8: discharge the monitoring minimum after the partner's last administration, with an acceptable reading
        taken after the post-dose one (about 40 min after the first) and at or before the discharge."""
        earliest = last_dose_at + timedelta(minutes=self.p("min_monitoring_minutes"))
        if discharged_at < earliest:
            self.breach("I8", f"partner {partner} was discharged {discharged_at.isoformat()}, before {earliest.isoformat()}")
        post = [v["at"] for v in mine if v.get("stage") == "post"
                and POST_DOSE_FROM <= v["at"] - first_dose_at <= POST_DOSE_UNTIL]
        after_post = max(post, default=first_dose_at)
        discharge = [v for v in mine if v.get("stage") == "discharge" and after_post < v["at"] <= discharged_at]
        if not discharge:
            self.breach("I8", f"partner {partner} has no discharge vitals in {session.id}")
        else:
            last = max(v["at"] for v in discharge)
            if not all(v.get("acceptable") is True for v in discharge if v["at"] == last):
                self.breach("I8", f"partner {partner}'s latest discharge vitals ({last.isoformat()}) are not "
                                  "marked acceptable")

    def judge_span(self, session: _Session, record: dict[str, Any], discharged_at: datetime | None,
                   open_ended: bool = False) -> None:
        """I8: doses, readings and discharge took place within the session, from its start to its recorded end
        (else its discharge, else its booked end), give or take the protocol's tolerance; adverse events not
        before it."""
        tolerance = timedelta(minutes=self.p("record_tolerance_minutes"))
        ended = record.get("ended_at")
        end = ended or discharged_at or session.end
        if ended is not None and discharged_at is not None and discharged_at > ended:
            self.breach("I8", f"{session.id} was discharged {discharged_at.isoformat()}, after it ended")
        times = [(f"a dose of {d.get('partner')}", d.get("at")) for d in record.get("doses") or []]
        times += [(f"{v.get('stage')} vitals of {v.get('partner')}", v.get("at")) for v in record.get("vitals") or []]
        times += [("the discharge", discharged_at)] if discharged_at is not None else []
        for what, at in times:
            if isinstance(at, datetime) and not (
                    session.start - tolerance <= at and (open_ended or at <= end + tolerance)):
                self.breach("I8", f"{what} at {at.isoformat()} is outside {session.id} "
                                  f"({session.start.isoformat()} to {end.isoformat()})")
        for adverse in record.get("adverse_events") or []:
            at = adverse.get("at")
            if isinstance(at, datetime) and at < session.start - tolerance:
                self.breach("I8", f"an adverse event at {at.isoformat()} is before {session.id} started")

    def judge_dose(
        self, session: _Session, dose: dict[str, Any], vitals: list[dict[str, Any]], discharged_at: datetime | None,
        last_dose_at: datetime | None = None, readings: bool = True, total_mg: float | None = None,
    ) -> None:
        partner, at, mg = dose.get("partner"), dose.get("at"), dose.get("mg")
        if not isinstance(at, datetime) or not isinstance(mg, (int, float)):
            self.breach("I6", f"a dose in {session.id} has no time or amount")
            return
        # I6: an approved approval for this session and partner, decided in time, not expired, covering the amount.
        approval = self.approvals.get(dose.get("approval_id") or "")
        if approval is None or approval.partner != partner or not self.covers(approval, session):
            self.breach("I6", f"partner {partner}'s dose in {session.id} has no dose approval for that session")
            approval = None
        elif approval.status != "approved":
            self.breach("I6", f"dose approval {approval.id} is {approval.status}")
        else:
            if not (approval.decided_at and approval.expires_at and approval.decided_at <= at <= approval.expires_at):
                self.breach(
                    "I6",
                    f"partner {partner} was dosed {at.isoformat()}, outside approval {approval.id}'s validity "
                    f"[{approval.decided_at}, {approval.expires_at}]",
                )
            given = mg if total_mg is None else total_mg
            if approval.approved_mg is None or given > approval.approved_mg:
                self.breach("I6", f"partner {partner} was given {given} mg; {approval.approved_mg} mg was approved")
        if not readings:
            return
        # I8: vitals before, about 40 min after, and at discharge; discharge after the minimum monitoring time.
        mine = [v for v in vitals if v.get("partner") == partner and isinstance(v.get("at"), datetime)]
        recent = timedelta(minutes=self.p("pre_dose_vitals_minutes"))
        pre = [v for v in mine if v.get("stage") == "pre" and timedelta(0) <= at - v["at"] <= recent]
        post = [v for v in mine if v.get("stage") == "post" and POST_DOSE_FROM <= v["at"] - at <= POST_DOSE_UNTIL]
        if not pre:
            self.breach("I8", f"partner {partner} has no vitals in the {recent} before the dose in {session.id}")
        if not post:
            self.breach("I8", f"partner {partner} has no vitals about 40 min after the dose in {session.id}")
        if discharged_at is not None:
            self.judge_discharge(session, partner, at, last_dose_at or at, mine, discharged_at)
        # I9: the latest pre-dose reading is acceptable and, unless the prescriber overrode, within the clinic's limit.
        if pre:
            last = max(v["at"] for v in pre)
            latest = [v for v in pre if v["at"] == last]
            if not all(v.get("acceptable") is True for v in latest):
                self.breach("I9", f"partner {partner}'s pre-dose vitals are not marked acceptable")
            limit = self.p("vitals_limit")
            overridden = approval is not None and bool(approval.override)
            ceiling = approval.overrides.get(last) if approval is not None else None
            if limit and not overridden:
                for v in latest:
                    if not _over(v, limit):
                        continue
                    if ceiling is None:
                        self.breach("I9", f"partner {partner}'s pre-dose vitals exceed the clinic limit, no override")
                    elif _over(v, ceiling):
                        self.breach("I9", f"partner {partner}'s pre-dose vitals exceed the prescriber's ceiling")

    def on_Dosed(self, event: Any) -> None:
        session = self.sessions.get(event.session_id)
        held_with_doses = session is not None and session.status == "held" and (session.record or {}).get("doses")
        if session is None or session.kind != "medicine" or not held_with_doses:
            self.breach("milestone", f"Dosed for {event.session_id}, which is not a medicine session held with doses")
        if event.session_id in self.dosed:
            self.breach("milestone", f"medicine session {event.session_id} is Dosed twice")
        if not self.prepared:
            self.breach("I1", f"Dosed {event.session_id} before the course was Prepared")
        if session is not None and _utc(getattr(event, "integration_deadline", None)) != self.deadline(session):
            self.breach(
                "I4", f"Dosed {event.session_id} says its window closes {getattr(event, 'integration_deadline', None)}, "
                f"not {self.deadline(session)}",
            )
        self.expect_dosed = None
        self.dosed.append(event.session_id)

    def on_Integrated(self, event: Any) -> None:
        sid = event.session_id
        if sid not in self.dosed:
            self.breach("milestone", f"Integrated for {sid}, which is not Dosed")
        if sid in self.integrated:
            self.breach("milestone", f"medicine session {sid} is Integrated twice")
        held = len(self.integrations_held(sid))
        if held < self.p("min_integration_sessions"):
            self.breach("I3", f"{sid} is Integrated after {held} of {self.p('min_integration_sessions')} sessions")
        self.integrated.add(sid)

    def on_Assessed(self, event: Any) -> None:
        if self.assessed:
            self.breach("milestone", "Assessed is recorded twice")
        if not self.assessed_conditions():
            self.breach(
                "milestone", "Assessed without both partners screened eligible and a joint assessment session held"
            )
        self.assessed = True

    def on_Prepared(self, event: Any) -> None:
        if self.prepared:
            self.breach("milestone", "Prepared is recorded twice")
        if not self.assessed:
            self.breach("I1", "Prepared before Assessed")
        if not self.prepared_conditions():
            self.breach("milestone", "Prepared before the protocol's preparation minimum was held")
        self.prepared = True

    def on_DoseApprovalRequested(self, event: Any) -> None:
        self.saw_time(_utc(event.requested_at))
        if event.approval_id in self.approvals:
            self.breach("I6", f"approval id {event.approval_id} is used twice")
        session = self.sessions.get(event.session_id)
        if session is None or session.kind != "medicine":
            self.breach("I6", f"approval {event.approval_id} is for {event.session_id}, not a medicine session")
        elif session.status != "booked":
            self.breach("I6", f"approval {event.approval_id} is requested for a {session.status} session")
        if event.partner not in PARTNERS or not event.requested_mg > 0:
            self.breach("I6", f"approval {event.approval_id} names no partner or no positive amount")
        requested_at = _utc(event.requested_at)
        # An approval stands unless declined, withdrawn, or expired (by now, or by the session's start).
        usable_until = max(requested_at, session.start) if session is not None else requested_at
        standing = [a for a in self.approvals.values()
                    if session is not None and self.covers(a, session) and a.partner == event.partner
                    and a.status not in ("declined", "withdrawn")
                    and not (a.expires_at is not None and a.expires_at < usable_until)]
        if standing:
            self.breach("I6", f"approval {event.approval_id} is requested while {standing[0].id} still stands")
        self.approvals[event.approval_id] = _Approval(
            id=event.approval_id,
            session_id=event.session_id,
            partner=event.partner,
            prescriber_id=event.prescriber_id,
            requested_mg=event.requested_mg,
        )

    def on_VitalsLimitOverridden(self, event: Any) -> None:
        """I9: the prescriber of an approved dose overrides the clinic's limit for one reading of a session of that
        dose still to be recorded, on the day (by the session's end), with a reason."""
        approval = self.approvals.get(event.approval_id)
        reading_at, decided_at = _utc(event.reading_at), _utc(event.decided_at)
        if approval is None or approval.status != "approved":
            self.breach("I9", f"the limit is overridden under {event.approval_id}, which is not an approved dose")
            return
        if getattr(event, "by", None) != f"prescriber:{approval.prescriber_id}":
            self.breach("I9", f"the limit is overridden by {event.by}, not by the prescriber of {approval.id}")
        if not self.p("vitals_limit"):
            self.breach("I9", "a limit is overridden where the course has none")
        if not str(event.reason).strip():
            self.breach("I9", "an override of the vitals limit gives a reason")
        tolerance = timedelta(minutes=self.p("record_tolerance_minutes"))
        sessions = [s for s in self.sessions.values()
                    if s.kind == "medicine" and s.status == "booked" and self.covers(approval, s)
                    and s.start - tolerance <= reading_at <= s.end + tolerance]
        if not sessions:
            self.breach("I9", f"the reading overridden ({reading_at.isoformat()}) is of no session {approval.id} "
                              "covers that is still to be recorded")
        elif not reading_at <= decided_at <= sessions[0].end + tolerance:
            self.breach("I9", f"the override of {approval.id} was given {decided_at.isoformat()}, not on the day "
                              f"of the reading ({reading_at.isoformat()})")
        approval.overrides[reading_at] = dict(event.ceiling)

    def on_DoseApprovalWithdrawn(self, event: Any) -> None:
        approval = self.approvals.get(event.approval_id)
        if approval is None or approval.status != "pending":
            self.breach("I6", f"approval {event.approval_id} is withdrawn, but it is not pending")
        if not str(event.reason).strip():
            self.breach("I6", "withdrawing an approval request gives a reason")
        if approval is not None:
            approval.status = "withdrawn"

    def on_DoseApprovalDecided(self, event: Any) -> None:
        decided_at, expires_at = _utc(event.decided_at), _utc(event.expires_at)
        self.saw_time(decided_at)
        approval = self.approvals.get(event.approval_id)
        if approval is None:
            self.breach("I6", f"decision on unknown approval {event.approval_id}")
            return
        if approval.status != "pending":
            self.breach("I6", f"approval {approval.id} was already {approval.status}")
        if getattr(event, "by", None) != f"prescriber:{approval.prescriber_id}":
            self.breach(
                "I6", f"approval {approval.id} is addressed to {approval.prescriber_id} but was decided by {event.by}"
            )
        approval.status = event.decision
        approval.decided_at = decided_at
        if event.decision == "approved":
            approval.approved_mg = event.approved_mg
            approval.expires_at = expires_at
            approval.override = event.vitals_override_reason
            if event.approved_mg is None or not 0 < event.approved_mg <= approval.requested_mg:
                self.breach("I6", f"approval {approval.id} approves {event.approved_mg} mg of {approval.requested_mg}")
            valid = timedelta(days=self.p("approval_valid_days"))
            if expires_at != decided_at + valid:
                self.breach(
                    "I6", f"approval {approval.id} expires {expires_at}, not {self.p('approval_valid_days')} days "
                    "after its decision",
                )
        elif event.decision == "declined":
            approval.approved_mg, approval.expires_at, approval.override = None, None, None
        else:
            self.breach("I6", f"approval {approval.id} decided {event.decision!r}")

    def on_IntegrationWindowMissed(self, event: Any) -> None:
        sid, deadline = event.session_id, _utc(event.deadline)
        medicine = self.sessions.get(sid)
        if medicine is None or sid not in self.dosed:
            self.breach("I4", f"a missed window is recorded for {sid}, which is not Dosed")
        else:
            if deadline != self.deadline(medicine):
                self.breach("I4", f"the window of {sid} closes {self.deadline(medicine)}, not {deadline}")
            if self.window_kept(medicine):
                self.breach("I4", f"the window of {sid} is recorded missed but an integration session was held in it")
        if sid in self.missed_windows:
            self.breach("I4", f"the missed window of {sid} is recorded twice")
        self.missed_windows[sid] = False
        self.saw_time(deadline)

    def on_AdverseEventReported(self, event: Any) -> None:
        """I8: an adverse event of a medicine session that took place, never dated before it."""
        session = self.sessions.get(event.session_id)
        at = _utc(event.at)
        if session is None or session.kind != "medicine" or session.status not in ACTIVE:
            self.breach("I8", f"an adverse event is reported for {event.session_id}, no medicine session that "
                              "took place")
        elif at < session.start - timedelta(minutes=self.p("record_tolerance_minutes")):
            self.breach("I8", f"an adverse event at {at.isoformat()} is before {session.id} started")
        if event.partner not in PARTNERS or event.severity not in ("mild", "moderate", "severe"):
            self.breach("I8", "an adverse event names partner a or b and a severity")

    def on_MissedWindowAcknowledged(self, event: Any) -> None:
        if event.session_id not in self.missed_windows:
            self.breach("I4", f"acknowledged a window of {event.session_id} that was not recorded missed")
        elif self.missed_windows[event.session_id]:
            self.breach("I4", f"the missed window of {event.session_id} is acknowledged twice")
        if not str(event.reason).strip():
            self.breach("I4", "an acknowledgement of a missed window gives a reason")
        self.missed_windows[event.session_id] = True

    def on_DischargeRecorded(self, event: Any) -> None:
        """I8 for a discharge recorded after monitoring continued, judged on the whole record; Dosed comes next."""
        session = self.sessions.get(event.session_id)
        if session is None or not session.awaiting:
            self.breach("I8", f"a discharge is recorded for {event.session_id}, which awaits none")
            return
        record = {k: v for k, v in (session.record or {}).items() if k != "monitoring"}
        record["discharged_at"] = _utc(event.discharged_at)
        record["vitals"] = [*(record.get("vitals") or []), *_utc(list(event.vitals or []))]
        if getattr(event, "ended_at", None) is not None:
            record["ended_at"] = _utc(event.ended_at)
        discharged_at = record["discharged_at"]
        self.judge_span(session, {**record, "doses": [], "adverse_events": [],
                                  "vitals": _utc(list(event.vitals or []))}, discharged_at)
        doses = list(record.get("doses") or [])
        for partner in sorted({d.get("partner") for d in doses}):
            given = sorted(d["at"] for d in doses if d.get("partner") == partner)
            mine = [v for v in record["vitals"] if v.get("partner") == partner and isinstance(v.get("at"), datetime)]
            self.judge_discharge(session, partner, given[0], given[-1], mine, discharged_at)
        session.record = record
        if session.occupied_until > session.end:
            self.check_overlap(session)
        self.expect_dosed = session.id

    def on_Completed(self, event: Any) -> None:
        if any(s.awaiting for s in self.sessions.values()):
            self.breach("I8", "the course completed while a medicine session awaited its discharge")
        if not self.dosed:
            self.breach("I3", "the course completed without a medicine session")
        for sid in self.dosed:
            if sid not in self.integrated:
                self.breach("I3", f"the course completed before medicine session {sid} was Integrated")
        if self.closed is None:
            self.closed = "completed"

    def on_Discontinued(self, event: Any) -> None:
        if not str(event.reason).strip():
            self.breach("milestone", "a course is discontinued with a reason")
        if self.expect_discontinued and event.reason != "ineligible":
            self.breach("milestone", "a course ended by an ineligible screening is discontinued as 'ineligible'")
        self.expect_discontinued = False
        if self.closed is None:
            self.closed = "discontinued"

    # ------------------------------------------------------------ end of stream

    def at_end(self) -> None:
        if self.expect_dosed is not None:
            self.breach("milestone", f"medicine session {self.expect_dosed} was held but not Dosed")
        if self.expect_discontinued:
            self.breach("milestone", "a partner was screened ineligible but the course was not discontinued")
        if not self.opened or self.closed is not None:
            return
        if not self.assessed and self.assessed_conditions():
            self.breach("milestone", "both partners are eligible and a joint assessment was held, but not Assessed")
        if self.assessed and not self.prepared and self.prepared_conditions():
            self.breach("milestone", "the preparation minimum was held, but the course is not Prepared")
        for sid in self.dosed:
            if sid not in self.integrated and len(self.integrations_held(sid)) >= self.p("min_integration_sessions"):
                self.breach("milestone", f"{sid} has its integration sessions held but is not Integrated")


def check_events(events: Iterable[Any], ended: bool = True) -> list[Breach]:
    """Every rule the stream breaks, in stream order; an empty list when the course is sound.

    With `ended` (the default) the stream is taken to end after a whole command, so a milestone whose conditions
    hold must have been recorded by then; pass False to judge a cut that may fall inside a command's events.
    """
    return _Judge().run(list(events), ended)


def rules_broken(events: Iterable[Any]) -> set[str]:
    return {b.rule for b in check_events(events)}
