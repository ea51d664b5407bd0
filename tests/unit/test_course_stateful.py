"""Stateful property test of the Course aggregate: random command sequences at random times.

A Hypothesis state machine opens a course with a random model and protocol, then drives random commands
(screenings, bookings of every kind, moves, cancellations, held / missed records with mostly-correct but
sometimes broken medicine records, dose approvals, missed windows, completion, discontinuation) at times taken
from a clock that only moves forward. Every command either succeeds or is refused with a domain error, and a
refused command must leave the course exactly as it was.

After every step:
  * the independent checker in tests/invariants.py, which knows only DOMAIN.md and the stored events, finds no
    broken rule in the whole stream read back from an event store (POPO recorder, AES cipher, the library's
    transcoder), and
  * the course rebuilt from the store equals the live one: the same attributes, and the same decisions
    (integration-window deadlines and approval expiries as instants and as wall-clock arithmetic, phase and
    allowed actions).

A protocol-following clinic (`progress_action`) does the next sensible step with random details: it books
ahead (integration sessions before the dose, the next dose "the same time N days later", sometimes squeezed in
between integration sessions), records sessions late, and enters a medicine record that is wrong in one way about
half the time (it is refused and tries again). Every command rule first lets that clinic take 0-4 steps, and the
rules "progress" / "progress_run" only do that, so runs get far whichever rules Hypothesis' swarm testing switched
off; the command rules then issue their command with random, sometimes wrong, arguments.

Each breach the checker finds is raised as its own exception class (one per rule and judging line), so Hypothesis
reports and shrinks different broken rules separately instead of showing only one.
"""

from __future__ import annotations

import functools
import itertools
import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from builders import BY, HOME, HOME_HOST, PRESCRIBER, T0, vitals
from eventsourcing.application import Application
from eventsourcing.cryptography import AESCipher
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from invariants import Breach, check_events
from scheduler.domain.course import Course
from scheduler.domain.errors import (
    InvalidCommandError,
    NotAddressedError,
    NotHostingError,
    RulesBrokenError,
    UnknownApprovalError,
    UnknownSessionError,
)
from scheduler.domain.model import ApprovalStatus, HostFacts, Kind, Session, SessionStatus
from scheduler.domain.protocol import Model, Protocol, VitalsLimit
from scheduler.domain.rules import dosing

# A passing run takes 15-20 s; a failing one then shrinks every distinct breach to a short example, which takes
# 2-4 minutes here. The limit stays hard, just long enough for the report to come out.
pytestmark = pytest.mark.timeout(900)

DOMAIN_ERRORS = (RulesBrokenError, InvalidCommandError, UnknownSessionError, UnknownApprovalError, NotAddressedError,
                 NotHostingError)
OTHER_PRESCRIBER = "rx-2"
PARTNER_CLINIC = "partner"
NO_PRESCRIBER_HOST = HostFacts(HOME, has_prescriber=False, is_partner_of_home=False)
UNPARTNERED_HOST = HostFacts(PARTNER_CLINIC, has_prescriber=True, is_partner_of_home=False)
PARTNERED_HOST = HostFacts(PARTNER_CLINIC, has_prescriber=True, is_partner_of_home=True)
DOSE_AFTER_START = timedelta(minutes=10)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
UNKNOWN = "unknown-id"


# ------------------------------------------------------------------------ strategies

def _protocols(model: Model) -> st.SearchStrategy[Protocol]:
    """Protocols within DOMAIN.md's bounds, kept small enough that a run can get to completion."""
    low_dose = st.just(False) if model is Model.TAKING_TURNS else st.booleans()
    return low_dose.flatmap(
        lambda low: st.builds(
            Protocol,
            max_medicine_sessions=st.integers(1, 8 if low else 6),
            min_integration_sessions=st.integers(1, 4),
            integration_window_hours=st.integers(24, 120),
            min_medicine_interval_days=st.one_of(st.integers(1, 4), st.integers(1, 90)),
            approval_valid_days=st.integers(1, 30),
            min_monitoring_minutes=st.integers(60, 240),
            individual_preparation_sessions=st.integers(1, 2),
            joint_preparation_sessions=st.integers(2, 3),
            low_dose=st.just(low),
            vitals_limit=st.one_of(st.none(), st.just(VitalsLimit(140, 90)), st.just(VitalsLimit(150, 95, 110))),
        )
    )


models_and_protocols = st.sampled_from(list(Model)).flatmap(lambda m: st.tuples(st.just(m), _protocols(m)))
# Clinics may hand the domain times in their own IANA zone; most runs use UTC.
ZONES = ["UTC", "UTC", "Europe/Berlin", "America/New_York"]
# Medicine-record variants: the first is a correct record, the others each break (or stress) one thing.
RECORD_VARIANTS = [
    "ok", "ok", "ok",
    "no_pre_vitals", "no_post_vitals", "post_vitals_late", "no_discharge_vitals", "no_discharge_time",
    "early_discharge", "unacceptable_pre", "unacceptable_discharge", "discharge_vitals_out_of_order",
    "high_blood_pressure", "over_dose", "wrong_partner", "extra_dose", "no_approval_id",
    "dose_before_decision", "dose_after_expiry", "no_doses",
    "stale_pre_vitals", "dose_outside_session", "discharge_vitals_before_post", "ended_before_discharge",
    "ended_after_discharge", "split_dose", "split_over_dose", "monitoring_continues", "monitoring_continues",
    "not_dosed", "not_dosed", "not_dosed_stale_vitals",
]
CLOCK_STEPS = [HOUR, 3 * HOUR, 12 * HOUR, DAY, 49 * HOUR, 4 * DAY, 10 * DAY, 40 * DAY]
SHIFTS = [-3 * DAY, -DAY, -2 * HOUR, -HOUR, HOUR, 2 * HOUR, DAY, 3 * DAY, 8 * DAY]


class InvariantBroken(AssertionError):
    """Raised when the independent checker finds a broken rule; one subclass per rule id, so that Hypothesis
    reports (and shrinks) each kind of breach separately instead of hiding all but one."""


_BREACH_ERRORS: dict[str, type[InvariantBroken]] = {}


def breach_error(breaches: list[Breach]) -> InvariantBroken:
    code = breaches[0].code
    name = "Broken_" + code.replace("-", "_").replace("@", "_line_")
    cls = _BREACH_ERRORS.setdefault(code, type(name, (InvariantBroken,), {"__module__": __name__}))
    return cls("the checker found broken rules:\n  " + "\n  ".join(str(b) for b in breaches))


class ReplayDiffers(AssertionError):
    pass


def state_of(course: Course) -> dict[str, Any]:
    return {k: v for k, v in course.__dict__.items() if k != "_pending_events"}


def decisions_of(course: Course) -> dict[str, Any]:
    """What the course would decide next, including wall-clock arithmetic on its stored instants."""
    return {
        "phase": course.phase,
        "allowed": course.allowed_actions(),
        "deadlines": {s.id: course.window_deadline(s).isoformat() for s in course.dosed_sessions()},
        "finished": {s.id: s.finished_at.isoformat() for s in course.sessions.values()},
        "expiries": {a.id: a.expires_at and a.expires_at.isoformat() for a in course.approvals.values()},
        "completion": [v.rule for v in course.completion_violations()],
    }


# ------------------------------------------------------------------------- the machine

def command(**strategies: st.SearchStrategy[Any]) -> Callable[[Callable[..., None]], Any]:
    """A rule that, before its own command, lets the protocol-following clinic take 0-4 steps."""

    def decorate(function: Callable[..., None]) -> Any:
        @functools.wraps(function)
        def with_clinic_first(self: CourseMachine, clinic: int, clinic_data: st.DataObject, **arguments: Any) -> None:
            for _ in range(clinic):
                self.progress_action(clinic_data)
            function(self, **arguments)

        return rule(clinic=st.integers(0, 4), clinic_data=st.data(), **strategies)(with_clinic_first)

    return decorate


class CourseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app = Application(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.popo",
                "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
                "CIPHER_KEY": AESCipher.create_key(32),
            }
        )
        self.course: Course | None = None
        self.stored: list[Any] = []  # the course's events as read back from the store, in order
        self.clock = T0  # UTC; only moves forward
        self.zone = UTC
        self.target_dosed = 1
        self.serial = 0
        self.commands = 0
        self.refusals = 0
        self.snapshot = b""  # the pickled state after the last change, to prove refusals change nothing
        self.verified: tuple[int, bytes] | None = None  # (version, state) the invariants last passed on

    # ------------------------------------------------------------------ plumbing

    def at(self, instant: datetime) -> datetime:
        """An instant as the clinic hands it to the domain: in the run's zone."""
        return instant.astimezone(self.zone)

    @property
    def now(self) -> datetime:
        return self.at(self.clock)

    def advance(self, to: datetime) -> None:
        if to > self.clock:
            self.clock = to.astimezone(UTC)

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial:03d}"

    def save(self) -> list[Any]:
        assert self.course is not None
        new = self.course.collect_events()
        if new:
            self.app.save(*new)
            gt = self.stored[-1].originator_version if self.stored else None
            self.stored.extend(self.app.events.get(self.course.id, gt=gt))
        assert len(self.stored) == self.course.version, "the store holds every event the course triggered"
        self.snapshot = pickle.dumps(state_of(self.course))
        return new

    def run(self, label: str, command: Callable[..., Any], **arguments: Any) -> bool:
        """Runs one domain command. A refusal must be a domain error that left the course untouched."""
        course = self.course
        assert course is not None
        self.commands += 1
        version = course.version
        course.occurring(self.now)  # every event it records happened now, by the clinic's clock
        try:
            try:
                command(**arguments)
            finally:
                course.done()
        except DOMAIN_ERRORS as error:
            self.refusals += 1
            assert course.version == version, f"refused {label} changed the version"
            assert course.collect_events() == [], f"refused {label} left pending events"
            assert state_of(course) == pickle.loads(self.snapshot), f"refused {label} changed the course's state"
            rules = sorted({v.rule for v in getattr(error, "violations", ())}) or [type(error).__name__]
            event(f"refused {label}: {', '.join(rules)}")
            return False
        self.save()
        return True

    # ------------------------------------------------------------------ opening

    @initialize(
        model_protocol=models_and_protocols,
        first_dosed=st.sampled_from(["a", "b"]),
        target_dosed=st.integers(1, 3),
        start=st.integers(0, 364),
        zone=st.sampled_from(ZONES),
    )
    def open_course(self, model_protocol, first_dosed, target_dosed, start, zone) -> None:
        model, protocol = model_protocol
        self.zone = ZoneInfo(zone)
        self.clock = T0 + start * DAY
        self.target_dosed = min(target_dosed, protocol.max_medicine_sessions)
        self.course = Course.open(
            course_id=uuid4(),
            home_clinic_id=HOME,
            model=model,
            protocol=protocol,
            partners={"a": "ref-a", "b": "ref-b"},
            first_dosed=first_dosed,
            by=BY,
            now=self.now,
        )
        self.save()

    # ------------------------------------------------------------------ invariants

    def unchanged_since_verified(self) -> bool:
        """Nothing was stored and the live state is the one both invariants already passed on."""
        return self.verified is not None and self.verified == (self.course.version, pickle.dumps(state_of(self.course)))

    @invariant()
    def stream_keeps_every_rule_and_replays_to_the_same_course(self) -> None:
        if self.course is None or self.unchanged_since_verified():
            return
        self.the_stored_stream_keeps_every_rule()
        self.replay_from_the_store_gives_the_same_course()
        self.verified = (self.course.version, pickle.dumps(state_of(self.course)))

    def the_stored_stream_keeps_every_rule(self) -> None:
        breaches = check_events(self.stored)
        if breaches:
            raise breach_error(breaches)

    def replay_from_the_store_gives_the_same_course(self) -> None:
        replayed = self.app.repository.get(self.course.id)
        if state_of(replayed) != state_of(self.course):
            live, again = state_of(self.course), state_of(replayed)
            diff = {k: (live.get(k), again.get(k)) for k in live.keys() | again.keys() if live.get(k) != again.get(k)}
            raise ReplayDiffers(f"replayed state differs: {diff}")
        if decisions_of(replayed) != decisions_of(self.course):
            raise ReplayDiffers(
                f"the replayed course decides differently:\n live:     {decisions_of(self.course)}\n"
                f" replayed: {decisions_of(replayed)}"
            )

    def teardown(self) -> None:
        course = self.course
        if course is None:
            return
        dosed = len(course.dosed_sessions())
        reached = [m for m in ("assessed", "prepared") if course.has_milestone(m)]
        if dosed:
            reached.append("dosed")
        if any(m["milestone"] == "integrated" for m in course.milestones):
            reached.append("integrated")
        for milestone in reached:
            event(f"reached {milestone}")
        event(f"course ended {course.status.value}")
        event(f"dosed sessions: {dosed}")
        if course.missed_windows:
            event("a missed window was recorded")
        if self.commands:
            share = self.refusals / self.commands
            event(f"refused commands: {'<25%' if share < 0.25 else '25-50%' if share < 0.5 else '>=50%'}")

    # ------------------------------------------------------------------ helpers over the live state

    def sessions(self, *statuses: SessionStatus, kind: Kind | None = None) -> list[Session]:
        found = [
            s for s in self.course.sessions.values()
            if (not statuses or s.status in statuses) and (kind is None or s.kind is kind)
        ]
        return sorted(found, key=lambda s: (s.starts_at, s.id))

    def pick_session(self, data: st.DataObject, *statuses: SessionStatus) -> str:
        preferred = [s.id for s in self.sessions(*statuses)]
        everything = sorted(self.course.sessions)
        return data.draw(st.sampled_from(preferred * 3 + everything + [UNKNOWN]), label="session")

    def occupied(self, ignore: str | None = None) -> list[tuple[datetime, datetime]]:
        return [
            (s.starts_at, max(s.ends_at, s.finished_at))
            for s in self.course.sessions.values()
            if s.active and s.id != ignore
        ]

    def free_slot(self, earliest: datetime, length: timedelta, medicine: bool = False) -> datetime:
        """The first start at or after `earliest` that overlaps no active session (and, for a medicine session,
        keeps the protocol's interval to every active medicine session)."""
        start = earliest.astimezone(UTC)
        interval = timedelta(days=self.course.protocol.min_medicine_interval_days)
        for _ in range(200):
            moved = False
            for s, e in self.occupied():
                if s < start + length and start < e:
                    start, moved = e.astimezone(UTC) + timedelta(minutes=15), True
            if medicine:
                for m in self.sessions(SessionStatus.BOOKED, SessionStatus.HELD, kind=Kind.MEDICINE):
                    if abs(m.starts_at - start) < interval:
                        start, moved = m.starts_at.astimezone(UTC) + interval, True
            if not moved:
                return start
        return start

    def approval_for(self, session_id: str, partner: str) -> Any:
        """The partner's approval a dose at the session would be given under: asked for it, or carried from a
        session that took place without a dose."""
        session = self.course.sessions[session_id]
        for approval in self.course.approvals.values():
            if (
                dosing.covers(self.course, approval, session)
                and approval.partner == partner
                and approval.status is not ApprovalStatus.DECLINED
            ):
                return approval
        return None

    def medicine_length(self, data: st.DataObject) -> timedelta:
        """About 3 hours (seed 001), or long enough for the protocol's monitoring time."""
        monitoring = DOSE_AFTER_START + timedelta(minutes=self.course.protocol.min_monitoring_minutes + 30)
        return data.draw(st.sampled_from([3 * HOUR, max(3 * HOUR, monitoring)]), label="medicine session length")

    def medicine_record(self, session: Session, variant: str = "ok") -> dict[str, Any]:
        """A record of a medicine session held as booked: correct for "ok", else broken in one way."""
        course = self.course
        protocol = course.protocol
        index = len(course.dosed_sessions())
        partners = sorted(course.expected_dosed(index))
        if variant == "wrong_partner":
            partners = ["b" if p == "a" else "a" for p in partners][:1]
        elif variant == "extra_dose":
            partners = partners + [partners[0]]
        start = session.starts_at.astimezone(UTC)
        dosed_at = start + DOSE_AFTER_START
        approvals = {p: self.approval_for(session.id, p) for p in set(partners)}
        if variant == "dose_before_decision":
            decided = [a.decided_at for a in approvals.values() if a is not None and a.decided_at]
            dosed_at = min(decided).astimezone(UTC) - HOUR if decided else dosed_at
        elif variant == "dose_after_expiry":
            expiries = [a.expires_at for a in approvals.values() if a is not None and a.expires_at]
            dosed_at = max(expiries).astimezone(UTC) + HOUR if expiries else dosed_at
        elif variant == "stale_pre_vitals":  # the dose comes long after the reading taken at the start
            dosed_at = start + timedelta(minutes=protocol.pre_dose_vitals_minutes + 5)
        elif variant == "dose_outside_session":  # with its readings, a day early: the clinic's typo
            dosed_at = start - DAY + DOSE_AFTER_START
            start = start - DAY
        monitoring = timedelta(minutes=protocol.min_monitoring_minutes + 10)
        if variant == "early_discharge":
            monitoring = timedelta(minutes=protocol.min_monitoring_minutes - 10)
        discharged_at = dosed_at + monitoring
        doses, readings = [], []
        for p in partners:
            approval = approvals.get(p)
            mg = approval.approved_mg if approval is not None and approval.approved_mg else 100.0
            if variant == "over_dose":
                mg += 10.0
            if variant in ("split_dose", "split_over_dose"):  # two administrations, 5 min apart
                doses.append({"partner": p, "approval_id": None if approval is None else approval.id,
                              "mg": mg / 2 + (10.0 if variant == "split_over_dose" else 0.0),
                              "at": self.at(dosed_at + timedelta(minutes=5))})
                mg = mg / 2
            doses.append({
                "partner": p,
                "approval_id": None if variant == "no_approval_id" or approval is None else approval.id,
                "mg": mg,
                "at": self.at(dosed_at),
            })
            pre_at = start
            pre = vitals(p, "pre", self.at(pre_at), acceptable=variant != "unacceptable_pre")
            if variant == "high_blood_pressure":
                pre = vitals(p, "pre", self.at(pre_at), systolic=165, diastolic=100)
            post_at = dosed_at + (timedelta(minutes=90) if variant == "post_vitals_late" else timedelta(minutes=40))
            post = vitals(p, "post", self.at(post_at))
            discharge_reading_at = discharged_at - timedelta(minutes=5)
            if variant == "discharge_vitals_before_post":
                discharge_reading_at = post_at - timedelta(minutes=5)
            discharge = vitals(
                p, "discharge", self.at(discharge_reading_at),
                acceptable=variant != "unacceptable_discharge",
            )
            if variant != "no_pre_vitals":
                readings.append(pre)
            if variant != "no_post_vitals":
                readings.append(post)
            if variant == "discharge_vitals_out_of_order":
                # The latest discharge reading is not acceptable; an earlier, acceptable one is listed after it.
                readings.append(vitals(p, "discharge", self.at(discharged_at - timedelta(minutes=2)), acceptable=False))
                readings.append(vitals(p, "discharge", self.at(discharged_at - timedelta(minutes=20))))
            elif variant != "no_discharge_vitals":
                readings.append(discharge)
        record = {
            "doses": [] if variant == "no_doses" else doses,
            "vitals": readings,
            "discharged_at": None if variant == "no_discharge_time" else self.at(discharged_at),
        }
        if variant == "monitoring_continues":  # discharge vitals not yet acceptable: recorded later
            record = {"doses": doses, "vitals": [v for v in readings if v["stage"] != "discharge"],
                      "monitoring_continues": True}
        if variant in ("not_dosed", "not_dosed_stale_vitals"):  # pre-dose vitals too high: no dose today
            shift = timedelta(hours=-3) if variant == "not_dosed_stale_vitals" else timedelta(0)
            record = {"vitals": [{**v, "at": v["at"] + shift, "systolic": 175, "acceptable": False}
                                 for v in readings if v["stage"] == "pre"],
                      "not_dosed": "blood pressure too high to dose", "ended_at": self.at(dosed_at + HOUR)}
        if variant in ("ended_before_discharge", "ended_after_discharge"):
            shift = timedelta(minutes=-10 if variant == "ended_before_discharge" else 25)
            record["ended_at"] = self.at(discharged_at + shift)
        return record

    # ------------------------------------------------------------------ the protocol-following clinic

    def discharge(self, session: Session, data: st.DataObject) -> None:
        """Monitoring ended: the discharge of a session recorded while it continued, usually correct."""
        held = session.held or {}
        last = max(d["at"] for d in held.get("doses", [])).astimezone(UTC)
        minimum = timedelta(minutes=self.course.protocol.min_monitoring_minutes)
        how = data.draw(st.sampled_from(["ok", "ok", "ok", "early", "no_reading", "unacceptable"]),
                        label="discharge")
        discharged = last + minimum + (timedelta(minutes=-10) if how == "early" else timedelta(minutes=50))
        readings = [] if how == "no_reading" else [
            vitals(p, "discharge", self.at(discharged - timedelta(minutes=5)), acceptable=how != "unacceptable")
            for p in sorted({d["partner"] for d in held.get("doses", [])})]
        self.advance(discharged + timedelta(minutes=10))
        if self.run("record_discharge", self.course.record_discharge, session_id=session.id,
                    discharged_at=self.at(discharged), vitals=readings, now=self.now, by=BY, clinician_id="t-1"):
            event(f"discharge {how!r} recorded")

    def progress_action(self, data: st.DataObject) -> None:
        """One step a clinic following the protocol would take next, with random details: it books ahead,
        records sessions late, computes "the same time next week" on its wall clock, and sometimes enters a
        medicine record that is wrong in one way (and is then told so, and tries again)."""
        course = self.course
        if course.closed:
            return
        for session in [s for s in course.sessions.values() if s.awaiting_discharge]:
            self.discharge(session, data)
            return
        for window in course.missed_windows.values():
            if not window.acknowledged:
                self.run("acknowledge_missed_window", course.acknowledge_missed_window,
                    session_id=window.session_id, reason="clinician reviewed the missed window", by=BY)
                return
        if not course.assessed:
            for partner in ("a", "b"):
                if course.screenings.get(partner) != "eligible":
                    self.run("record_screening", course.record_screening,
                        partner=partner, result="eligible", clinician_id="t-1", by=BY)
                    return
        if self.approve_next_medicine(data):
            return
        # Hold the earliest booked session that may be held; a session that can no longer be held is missed.
        for session in self.sessions(SessionStatus.BOOKED):
            if self.holdable(session):
                self.hold(session, data)
                return
            if session.starts_at < self.clock - DAY:
                self.run("record_missed", course.record_missed,
                    session_id=session.id, reason="did not take place", now=self.now, by=BY)
                return
        if not course.assessed:
            self.book(Kind.ASSESSMENT, ("a", "b"), data)
        elif not course.prepared:
            self.book_preparation(data)
        else:
            self.medicine_cycle(data)

    def next_medicine(self) -> Session | None:
        booked = self.sessions(SessionStatus.BOOKED, kind=Kind.MEDICINE)
        return booked[0] if booked else None

    def approve_next_medicine(self, data: st.DataObject) -> bool:
        """Asks for (and gets) the approvals of the next medicine session before it starts: shortly before it,
        or as soon as it is booked if the approval will still be valid then."""
        course = self.course
        session = self.next_medicine()
        if session is None or not course.prepared or self.clock >= session.starts_at:
            return False
        valid = timedelta(days=course.protocol.approval_valid_days)
        for partner in sorted(course.expected_dosed(len(course.dosed_sessions()))):
            approval = self.approval_for(session.id, partner)
            if approval is not None and approval.status is ApprovalStatus.PENDING:
                return self.decide(approval.id, approval.prescriber_id, approve=True) or True
            if approval is None:
                if session.starts_at - self.clock > valid - HOUR:
                    if data.draw(st.booleans(), label="wait for the approval"):
                        return False
                    self.advance(session.starts_at - 12 * HOUR)
                aid = self.next_id("ap-")
                if self.run("request_dose_approval", course.request_dose_approval,
                        approval_id=aid, session_id=session.id, partner=partner, prescriber_id=PRESCRIBER,
                        requested_mg=100.0, prescriber_authorised=True, now=self.now, by=BY):
                    self.decide(aid, PRESCRIBER, approve=True)
                return True
        return False

    def holdable(self, session: Session) -> bool:
        course = self.course
        if session.kind is Kind.ASSESSMENT:
            return True
        if session.kind is Kind.PREPARATION:
            return course.assessed
        if session.kind is Kind.INTEGRATION:
            return course.has_milestone("dosed", session.follows)
        # A medicine session: the next one, once the last is integrated, with every approval valid at the dose.
        dosed = course.dosed_sessions()
        if not course.prepared or (dosed and not course.has_milestone("integrated", dosed[-1].id)):
            return False
        if session is not self.next_medicine():
            return False
        dose_at = session.starts_at + DOSE_AFTER_START
        for partner in course.expected_dosed(len(dosed)):
            approval = self.approval_for(session.id, partner)
            if approval is None or approval.status is not ApprovalStatus.APPROVED:
                return False
            if not approval.decided_at <= dose_at <= approval.expires_at:
                return False
        return True

    def hold(self, session: Session, data: st.DataObject) -> None:
        course = self.course
        late = data.draw(st.sampled_from([10, 10, 60, 600, 2 * 24 * 60]), label="minutes late") * timedelta(minutes=1)
        if session.kind is Kind.MEDICINE:
            booked = self.sessions(SessionStatus.BOOKED, kind=Kind.INTEGRATION)
            following = [s for s in booked if s.follows == session.id]
            if not following and data.draw(st.booleans(), label="book integration before the dose"):
                # Book the first integration session in advance, soon after the medicine session's booked end.
                lead = data.draw(st.sampled_from([15, 120, 1200]), label="minutes after the end") * timedelta(minutes=1)
                start = self.free_slot(max(session.ends_at, self.clock) + lead, HOUR)
                sid = self.next_id("int-")
                self.run("book_session integration", course.book_session,
                    session_id=sid, kind=Kind.INTEGRATION, partners=("a", "b"), starts_at=self.at(start),
                    ends_at=self.at(start + HOUR), clinic_id=HOME, by=BY, now=self.now)
                return
            variant = data.draw(st.sampled_from(["ok"] * 20 + RECORD_VARIANTS[3:]), label="record")
            record = self.medicine_record(session, variant)
            ends = [record[k] for k in ("discharged_at", "ended_at") if record.get(k)]
            if record.get("monitoring_continues"):
                ends = [max(d["at"] for d in record["doses"]).astimezone(UTC) + timedelta(minutes=45)]
            self.advance(max([session.ends_at] + ends) + late)
            if self.run("record_held", course.record_held,
                    session_id=session.id, now=self.now, by=BY, notes="went well", **record):
                event(f"progress: medicine record {variant!r} accepted")
                # Book the first integration session(s) at once, inside the window; perhaps the next dose too.
                self.book_integration(session, data)
                if len(course.dosed_sessions()) < self.target_dosed and data.draw(st.booleans(), label="book ahead"):
                    self.book_medicine_after(session, data)
            return
        self.advance(session.ends_at + late)
        self.run("record_held", course.record_held, session_id=session.id, now=self.now, by=BY, notes="ok")

    def book(
        self, kind: Kind, partners: tuple[str, ...], data: st.DataObject, earliest: datetime | None = None
    ) -> bool:
        course = self.course
        lead = data.draw(st.sampled_from([2, 20, 50, 170]), label="hours ahead") * HOUR
        length = self.medicine_length(data) if kind is Kind.MEDICINE else HOUR
        start = self.free_slot(max(earliest or self.clock, self.clock) + lead, length, medicine=kind is Kind.MEDICINE)
        sid = self.next_id(kind.value[:3] + "-")
        return self.run(f"book_session {kind.value}", course.book_session,
            session_id=sid, kind=kind, partners=partners, starts_at=self.at(start), ends_at=self.at(start + length),
            clinic_id=HOME, host=HOME_HOST, by=BY, now=self.now)

    def book_preparation(self, data: st.DataObject) -> None:
        course = self.course
        held = self.sessions(SessionStatus.HELD, SessionStatus.BOOKED, kind=Kind.PREPARATION)
        for partners, needed in (
            (("a",), course.protocol.individual_preparation_sessions),
            (("b",), course.protocol.individual_preparation_sessions),
            (("a", "b"), course.protocol.joint_preparation_sessions),
        ):
            if sum(1 for s in held if s.partners == partners) < needed:
                self.book(Kind.PREPARATION, partners, data)
                return

    def book_integration(self, medicine: Session, data: st.DataObject) -> None:
        """Books the next integration session after `medicine` (the first one inside its window), and sometimes
        the following ones too, a day or two apart."""
        course = self.course
        window = timedelta(hours=course.protocol.integration_window_hours)
        following = [s for s in self.sessions(SessionStatus.BOOKED, SessionStatus.HELD, kind=Kind.INTEGRATION)
                     if s.follows == medicine.id]
        after = max([self.clock, medicine.finished_at] + [s.ends_at for s in following])
        ahead = data.draw(st.sampled_from([1, 1, 2, 3]), label="integration sessions to book")
        for later in self.sessions(SessionStatus.BOOKED, kind=Kind.MEDICINE):
            if later.starts_at > medicine.starts_at and self.free_slot(after, HOUR) > later.starts_at:
                # The next dose was booked too early to fit this one's integration sessions in: call it off.
                self.run("cancel_session", course.cancel_session,
                    session_id=later.id, reason="integration sessions first", by=BY)
                return
        for n in range(ahead):
            lead = data.draw(st.sampled_from([2, 20, 40]), label="hours ahead") * HOUR
            if not following and n == 0:
                lead = min(lead, (medicine.finished_at + window - after) / 2)
            start = self.free_slot(after + max(lead, timedelta(minutes=30)), HOUR)
            sid = self.next_id("int-")
            if not self.run("book_session integration", course.book_session,
                    session_id=sid, kind=Kind.INTEGRATION, partners=("a", "b"), starts_at=self.at(start),
                    ends_at=self.at(start + HOUR), clinic_id=HOME, by=BY, now=self.now):
                return
            if course.sessions[sid].follows != medicine.id:
                # A later medicine session is booked before this time: it belongs to that one.
                event("progress: integration session booked after the next medicine session")
                return
            after = start + HOUR

    def medicine_cycle(self, data: st.DataObject) -> None:
        course = self.course
        dosed = course.dosed_sessions()
        booked = self.next_medicine()
        if dosed and not course.has_milestone("integrated", dosed[-1].id):
            last = dosed[-1]
            following = [s for s in self.sessions(SessionStatus.BOOKED, SessionStatus.HELD, kind=Kind.INTEGRATION)
                         if s.follows == last.id]
            if not following and self.clock > course.window_deadline(last) and last.id not in course.missed_windows:
                # The window closed without an integration session: record it (then acknowledge it and book late
                # integration sessions, the way back that DOMAIN.md's I4 describes).
                event("progress: recording a missed integration window")
                self.run("record_missed_integration_windows",
                         course.record_missed_integration_windows, now=self.now, by=BY)
                return
            if booked is None and len(dosed) < self.target_dosed and data.draw(st.booleans(), label="book ahead"):
                # Book the next dosing session in advance: "the same time, N days later" on the clinic's clock.
                self.book_medicine_after(last, data)
                return
            self.book_integration(last, data)
            return
        if len(dosed) >= self.target_dosed:
            leftovers = self.sessions(SessionStatus.BOOKED)
            if leftovers:
                self.run("cancel_session", course.cancel_session,
                    session_id=leftovers[0].id, reason="course is done", by=BY)
            else:
                self.run("complete", course.complete, by=BY)
            return
        if booked is None:
            if dosed:
                self.book_medicine_after(dosed[-1], data)
            else:
                self.book(Kind.MEDICINE, ("a", "b"), data)
            return
        if self.clock > booked.starts_at or not self.holdable(booked):
            self.run("cancel_session", course.cancel_session,
                session_id=booked.id, reason="cannot take place as booked", by=BY)

    def book_medicine_after(self, last: Session, data: st.DataObject) -> bool:
        course = self.course
        interval = timedelta(days=course.protocol.min_medicine_interval_days)
        extra = data.draw(st.sampled_from([0, 0, 1, 3]), label="extra days") * DAY
        # Wall-clock arithmetic in the clinic's zone, as a clinic books "the same time next week".
        start = self.at(last.starts_at) + interval + extra
        following = [s for s in self.sessions(SessionStatus.BOOKED, SessionStatus.HELD, kind=Kind.INTEGRATION)
                     if s.follows == last.id]
        earliest = last.starts_at + interval
        gaps = [a.ends_at + HOUR for a, b in itertools.pairwise(following) if a.ends_at + HOUR >= earliest]
        if gaps and data.draw(st.booleans(), label="squeeze the next dose in between integration sessions"):
            start = self.at(gaps[0])
        if start.astimezone(UTC) < self.clock + HOUR:
            start = self.at(self.clock + DAY)
        length = self.medicine_length(data)
        start = self.at(self.free_slot(start, length, medicine=True))
        sid = self.next_id("med-")
        # Sometimes at the partner clinic, which is then asked to confirm it.
        host = PARTNERED_HOST if data.draw(st.booleans(), label="at the partner clinic") else HOME_HOST
        booked = self.run("book_session medicine", course.book_session,
            session_id=sid, kind=Kind.MEDICINE, partners=("a", "b"), starts_at=start, ends_at=start + length,
            clinic_id=host.clinic_id, host=host, by=BY, now=self.now)
        if booked and any(s.follows == last.id and s.starts_at > start for s in self.sessions(
                SessionStatus.BOOKED, kind=Kind.INTEGRATION)):
            event("progress: next dose booked before integration sessions of the last one")
        return booked

    def decide(self, approval_id: str, prescriber: str, approve: bool, approved_mg: float | None = None) -> bool:
        course = self.course
        return self.run("decide_dose_approval", course.decide_dose_approval,
            approval_id=approval_id, prescriber_id=prescriber, approve=approve, now=self.now,
            approved_mg=approved_mg, reason="assessed", by=f"prescriber:{prescriber}")

    @rule(data=st.data())
    def progress(self, data) -> None:
        self.progress_action(data)

    @rule(data=st.data(), steps=st.integers(2, 12))
    def progress_run(self, data, steps) -> None:
        for _ in range(steps):
            self.progress_action(data)

    # ------------------------------------------------------------------ the commands, with random arguments
    # Each of these first lets the clinic go on with its work for a few steps (so that progress does not depend on
    # which rules Hypothesis' swarm testing switched on for a run), then issues its command with random arguments.


    @command(partner=st.sampled_from(["a", "b"]), result=st.sampled_from(["eligible"] * 39 + ["ineligible"]))
    def record_screening(self, partner, result) -> None:
        self.run("record_screening", self.course.record_screening,
            partner=partner, result=result, clinician_id="t-2", notes="screened", by=BY)

    @command(
        kind=st.sampled_from(list(Kind)),
        partners=st.sampled_from([("a", "b"), ("a", "b"), ("a",), ("b",)]),
        anchor=st.sampled_from(["clock", "clock", "other session", "medicine", "past"]),
        offset=st.sampled_from([HOUR, 5 * HOUR, DAY, 2 * DAY, 6 * DAY, 20 * DAY, -HOUR, timedelta(minutes=30)]),
        length=st.sampled_from([HOUR, 3 * HOUR, timedelta(minutes=50)]),
        host=st.sampled_from([HOME_HOST, HOME_HOST, HOME_HOST, None, NO_PRESCRIBER_HOST, UNPARTNERED_HOST,
                              PARTNERED_HOST]),
        data=st.data(),
    )
    def book_session(self, kind, partners, anchor, offset, length, host, data) -> None:
        """Books at a random time near the clock, sometimes overlapping another session or too close to a
        medicine session, sometimes in the past, sometimes at an unknown or unpartnered clinic."""
        course = self.course
        base = self.clock
        if anchor == "other session" and course.sessions:
            base = course.sessions[data.draw(st.sampled_from(sorted(course.sessions)), label="anchor")].starts_at
        elif anchor == "medicine" and self.sessions(kind=Kind.MEDICINE):
            base = data.draw(st.sampled_from(self.sessions(kind=Kind.MEDICINE)), label="anchor").starts_at
        elif anchor == "past":
            base = self.clock - 3 * DAY
        start = self.at(base) + offset  # in the clinic's zone: wall-clock arithmetic, as a clinic would
        sid = self.next_id("s-")
        clinic = host.clinic_id if host is not None else "nowhere"
        self.run(f"book_session {kind.value}", course.book_session,
            session_id=sid, kind=kind, partners=partners, starts_at=start, ends_at=start + length,
            clinic_id=clinic, host=host, by=BY, now=self.now)

    @command(data=st.data(), shift=st.sampled_from(SHIFTS), length=st.sampled_from([None, HOUR, 3 * HOUR]))
    def reschedule_session(self, data, shift, length) -> None:
        course = self.course
        sid = self.pick_session(data, SessionStatus.BOOKED)
        session = course.sessions.get(sid)
        start = self.at(session.starts_at if session else self.clock) + shift
        length = length or ((session.ends_at - session.starts_at) if session else HOUR)
        asked = len(course.approvals)
        if self.run("reschedule_session", course.reschedule_session, session_id=sid, starts_at=start,
                    ends_at=start + length, by=BY, now=self.now, new_approval_id=lambda: self.next_id("ap-")) \
                and len(course.approvals) > asked:
            event("a move past an approval's expiry asked the prescriber again")

    @command(data=st.data())
    def cancel_session(self, data) -> None:
        sid = self.pick_session(data, SessionStatus.BOOKED)
        self.run("cancel_session", self.course.cancel_session, session_id=sid, reason="couple asked", by=BY,
                 now=self.now)

    @command(data=st.data(), late=st.booleans())
    def record_missed(self, data, late) -> None:
        course = self.course
        sid = self.pick_session(data, SessionStatus.BOOKED)
        if late and sid in course.sessions:
            self.advance(course.sessions[sid].ends_at)
        self.run("record_missed", course.record_missed,
            session_id=sid, reason="no show", now=self.now, by=BY)

    @command(data=st.data(), offset=st.sampled_from([-2 * HOUR, -10 * timedelta(minutes=1), 30 * timedelta(minutes=1),
                                                     2 * HOUR, 9 * HOUR, 3 * DAY]),
             severity=st.sampled_from(["mild", "severe", "grave"]))
    def report_adverse_event(self, data, offset, severity) -> None:
        """An adverse event of a (usually medicine) session, dated around its start or long after, reported now."""
        course = self.course
        medicine = [s.id for s in self.sessions(SessionStatus.BOOKED, SessionStatus.HELD, kind=Kind.MEDICINE)]
        sid = data.draw(st.sampled_from(medicine), label="medicine session") if medicine and data.draw(
            st.booleans(), label="of a medicine session") else self.pick_session(data)
        session = course.sessions.get(sid)
        at = (session.starts_at if session is not None else self.clock) + offset
        if at > self.clock and data.draw(st.booleans(), label="report after it happened"):
            self.advance(at)
        if self.run("report_adverse_event", course.report_adverse_event, session_id=sid, partner="a",
                    at=self.at(at), kind="nausea", severity=severity, clinician_id="t-1", now=self.now, by=BY):
            event("adverse event reported")

    @command(data=st.data(), reason=st.sampled_from(["session moves", "session moves", " "]))
    def withdraw_dose_approval(self, data, reason) -> None:
        """The clinic takes back a request (usually a pending one, asked for just before if there is none)."""
        course = self.course
        medicine = [s for s in self.sessions(SessionStatus.BOOKED, kind=Kind.MEDICINE)]
        if medicine and not any(a.status is ApprovalStatus.PENDING for a in course.approvals.values()):
            session = data.draw(st.sampled_from(medicine), label="medicine session to ask for")
            self.run("request_dose_approval", course.request_dose_approval, approval_id=self.next_id("ap-"),
                     session_id=session.id, partner=sorted(course.to_be_dosed(session))[0], prescriber_id=PRESCRIBER,
                     requested_mg=100.0, prescriber_authorised=True, now=self.now, by=BY)
        pending = sorted(a.id for a in course.approvals.values() if a.status is ApprovalStatus.PENDING)
        aid = data.draw(st.sampled_from(pending * 3 + sorted(course.approvals) + [UNKNOWN]), label="approval")
        if self.run("withdraw_dose_approval", course.withdraw_dose_approval, approval_id=aid, reason=reason, by=BY):
            event("dose approval request withdrawn")

    @command(data=st.data(), variant=st.sampled_from(RECORD_VARIANTS), wait=st.booleans())
    def record_held(self, data, variant, wait) -> None:
        """Records a random session held, usually after it ended; a medicine session with a record that is
        mostly correct but sometimes broken."""
        course = self.course
        sid = self.pick_session(data, SessionStatus.BOOKED)
        session = course.sessions.get(sid)
        record: dict[str, Any] = {}
        if session is not None and session.kind is Kind.MEDICINE:
            record = self.medicine_record(session, variant)
        if session is not None and wait:
            self.advance(max([session.ends_at] + [r for r in [record.get("discharged_at")] if r]))
        self.run("record_held", course.record_held,
            session_id=sid, now=self.now, notes="recorded", by=BY, **record)

    @command(
        data=st.data(),
        partner=st.sampled_from(["a", "b"]),
        prescriber=st.sampled_from([PRESCRIBER, PRESCRIBER, OTHER_PRESCRIBER]),
        authorised=st.sampled_from([True, True, True, False]),
        mg=st.sampled_from([100.0, 50.0, 150.0, 0.0]),
    )
    def request_dose_approval(self, data, partner, prescriber, authorised, mg) -> None:
        course = self.course
        medicine = [s.id for s in self.sessions(SessionStatus.BOOKED, kind=Kind.MEDICINE)]
        sid = data.draw(st.sampled_from(medicine * 3 + sorted(course.sessions) + [UNKNOWN]), label="session")
        aid = self.next_id("ap-")
        self.run("request_dose_approval", course.request_dose_approval,
            approval_id=aid, session_id=sid, partner=partner, prescriber_id=prescriber, requested_mg=mg,
            prescriber_authorised=authorised, now=self.now, by=BY)

    @command(
        data=st.data(),
        addressed=st.sampled_from([True, True, True, False]),
        approve=st.sampled_from([True, True, True, False]),
        amount=st.sampled_from(["requested", "requested", "less", "more"]),
    )
    def decide_dose_approval(self, data, addressed, approve, amount) -> None:
        course = self.course
        pending = [a.id for a in course.approvals.values() if a.status is ApprovalStatus.PENDING]
        aid = data.draw(st.sampled_from(pending * 3 + sorted(course.approvals) + [UNKNOWN]), label="approval")
        approval = course.approvals.get(aid)
        prescriber = approval.prescriber_id if approval is not None else PRESCRIBER
        if not addressed:
            prescriber = OTHER_PRESCRIBER if prescriber == PRESCRIBER else PRESCRIBER
        requested = approval.requested_mg if approval is not None else 100.0
        approved_mg = {"requested": None, "less": requested / 2, "more": requested + 25}[amount]
        self.decide(aid, prescriber, approve, approved_mg)

    @command(
        data=st.data(),
        ceiling=st.sampled_from(["above the reading", "above the reading", "below the reading"]),
        when=st.sampled_from(["on the day", "on the day", "now"]),
        reason=st.sampled_from(["white-coat hypertension, home readings normal", " "]),
    )
    def override_vitals_limit(self, data, ceiling, when, reason) -> None:
        """On the day, the prescriber lets the pre-dose reading of a medicine session (taken at its start, as the
        records here take it; 165/100 when it is high) stand above the clinic's limit, up to a ceiling."""
        course = self.course
        approved = [a for a in course.approvals.values() if a.status is ApprovalStatus.APPROVED]
        aid = data.draw(st.sampled_from(sorted(a.id for a in approved) + [UNKNOWN]), label="approval")
        covered = [s for s in self.sessions(SessionStatus.BOOKED, kind=Kind.MEDICINE)
                   if aid in course.approvals and dosing.covers(course, course.approvals[aid], s)]
        reading_at = covered[0].starts_at.astimezone(UTC) if covered else self.clock
        if when == "on the day" and covered:
            self.advance(reading_at + timedelta(minutes=5))
        prescriber = course.approvals[aid].prescriber_id if aid in course.approvals else PRESCRIBER
        systolic, diastolic = (170, 105) if ceiling == "above the reading" else (150, 95)
        if self.run("override_vitals_limit", course.override_vitals_limit, approval_id=aid, prescriber_id=prescriber,
                    reading_at=self.at(reading_at), systolic=systolic, diastolic=diastolic, reason=reason,
                    now=self.now, by=f"prescriber:{prescriber}"):
            event(f"vitals limit overridden, ceiling {ceiling}")

    @command(
        data=st.data(),
        by_host=st.sampled_from([True, True, True, False]),
        decision=st.sampled_from(["confirmed", "declined", "maybe"]),
        reason=st.sampled_from(["no monitoring nurse that day", " "]),
    )
    def confirm_session(self, data, by_host, decision, reason) -> None:
        """The hosting clinic (or, sometimes, another) confirms or declines a session, usually one at a partner."""
        course = self.course
        hosted = [s.id for s in self.sessions(SessionStatus.BOOKED, kind=Kind.MEDICINE) if s.clinic_id != HOME]
        sid = data.draw(st.sampled_from(hosted * 3 + sorted(course.sessions) + [UNKNOWN]), label="session")
        session = course.sessions.get(sid)
        clinic = session.clinic_id if session is not None and by_host else "elsewhere"
        if self.run("confirm_session", course.confirm_session,
                    session_id=sid, clinic_id=clinic, decision=decision, reason=reason, by=f"clinic:{clinic}"):
            event(f"accepted confirm_session: {decision}")

    @command()
    def record_missed_integration_windows(self) -> None:
        self.run("record_missed_integration_windows",
                 self.course.record_missed_integration_windows, now=self.now, by=BY)

    @command(data=st.data(), reason=st.sampled_from(["couple was ill", "couple was ill", " "]))
    def acknowledge_missed_window(self, data, reason) -> None:
        course = self.course
        candidates = sorted(course.missed_windows) * 3 + [s.id for s in course.dosed_sessions()] + [UNKNOWN]
        sid = data.draw(st.sampled_from(candidates), label="session")
        # With the clock (as the API passes it), a window closed by the course's own times needs no watcher.
        now = self.now if data.draw(st.booleans(), label="with the clock") else None
        self.run("acknowledge_missed_window", course.acknowledge_missed_window, session_id=sid, reason=reason,
                 by=BY, clinician_id="t-1", now=now)

    @command()
    def complete(self) -> None:
        self.run("complete", self.course.complete, by=BY)

    @command(roll=st.integers(0, 29), reason=st.sampled_from(["couple separated", ""]))
    def discontinue(self, roll, reason) -> None:
        if roll == 29:  # rarely, or most runs would end early
            self.run("discontinue", self.course.discontinue, reason=reason, by=BY)

    @command(step=st.sampled_from(CLOCK_STEPS))
    def advance_clock(self, step) -> None:
        self.advance(self.clock + step)


CourseMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    # No explain phase: on a failure it re-runs the example hundreds of times under a tracer (minutes here), and
    # the shrunk steps with their labelled draws already say what happened.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TestCourseStateful = CourseMachine.TestCase
