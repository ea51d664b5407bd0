"""A hosting clinic's booking rules: buffers around each kind of session, minimum notice and booking horizon,
clinicians' daily and weekly limits, a daily cap on medicine sessions it hosts for partner clinics, and holds.

Booking, rescheduling, holding and the free-slot search judge a slot with these same functions, so a slot offered
is a slot a booking accepts. Days and weeks are the hosting clinic's local ones (a week starts on Monday); every
span is elapsed time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from scheduler.domain.calendar import Calendar, Resource
from scheduler.domain.errors import Violation

MAX_BUFFER_MINUTES = 240
MAX_NOTICE_MINUTES = 60 * 24 * 30
MAX_HORIZON_DAYS = 730
MAX_DAILY_LIMIT = 48
MAX_WEEKLY_LIMIT = 200
MAX_HOLD_MINUTES = 60
MAX_PARTNER_HOLDS = 500


@dataclass(frozen=True)
class Buffer:
    """Time the clinic's resources (clinicians, room) need free before and after a kind of session."""

    before_minutes: int = 0
    after_minutes: int = 0


@dataclass(frozen=True)
class BookingRules:
    """A clinic's booking rules; the defaults restrict nothing but holds (10 minutes, 20 per partner clinic)."""

    buffers: Mapping[str, Buffer] = field(default_factory=dict)  # by session kind
    min_notice_minutes: int = 0
    horizon_days: int | None = None  # None: no horizon
    clinician_daily_limit: int | None = None  # sessions a clinician has on one local day
    clinician_weekly_limit: int | None = None  # ... in one local week (Monday to Sunday)
    partner_medicine_daily_cap: int | None = None  # medicine sessions hosted for partner clinics on one local day
    hold_minutes: int = 10  # how long a hold lasts unless the holder asks for less
    max_partner_holds: int = 20  # open holds one partner clinic may have here at once

    def buffer(self, kind: str) -> tuple[timedelta, timedelta]:
        found = self.buffers.get(kind, Buffer())
        return timedelta(minutes=found.before_minutes), timedelta(minutes=found.after_minutes)

    def problems(self) -> list[str]:
        """What is out of bounds in these rules (a clinic setting them gets every problem at once)."""
        problems = []
        for kind, b in self.buffers.items():
            if not (0 <= b.before_minutes <= MAX_BUFFER_MINUTES and 0 <= b.after_minutes <= MAX_BUFFER_MINUTES):
                problems.append(f"buffers of {kind} sessions must be 0..{MAX_BUFFER_MINUTES} minutes")
        bounds = [
            ("min_notice_minutes", self.min_notice_minutes, 0, MAX_NOTICE_MINUTES),
            ("horizon_days", self.horizon_days, 1, MAX_HORIZON_DAYS),
            ("clinician_daily_limit", self.clinician_daily_limit, 1, MAX_DAILY_LIMIT),
            ("clinician_weekly_limit", self.clinician_weekly_limit, 1, MAX_WEEKLY_LIMIT),
            ("partner_medicine_daily_cap", self.partner_medicine_daily_cap, 0, MAX_DAILY_LIMIT),
            ("hold_minutes", self.hold_minutes, 1, MAX_HOLD_MINUTES),
            ("max_partner_holds", self.max_partner_holds, 0, MAX_PARTNER_HOLDS),
        ]
        problems += [f"{name} must be {low}..{high}" for name, value, low, high in bounds
                     if value is not None and not low <= value <= high]
        if self.horizon_days is not None and self.min_notice_minutes > self.horizon_days * 24 * 60:
            problems.append("min_notice_minutes must not reach past horizon_days")
        return problems

    def to_dict(self) -> dict[str, object]:
        return {
            "buffers": {k: {"before_minutes": b.before_minutes, "after_minutes": b.after_minutes}
                        for k, b in sorted(self.buffers.items())},
            "min_notice_minutes": self.min_notice_minutes, "horizon_days": self.horizon_days,
            "clinician_daily_limit": self.clinician_daily_limit,
            "clinician_weekly_limit": self.clinician_weekly_limit,
            "partner_medicine_daily_cap": self.partner_medicine_daily_cap,
            "hold_minutes": self.hold_minutes, "max_partner_holds": self.max_partner_holds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object] | None) -> BookingRules:
        if not data:
            return cls()
        buffers = data.get("buffers") or {}
        assert isinstance(buffers, Mapping)
        values = {k: v for k, v in data.items() if k != "buffers" and k in cls.__dataclass_fields__}
        return cls(buffers={k: Buffer(**v) for k, v in buffers.items()}, **values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Candidate:
    """A slot judged for booking: what it is, when, and for which course (`ignore`: the session or hold it
    replaces, whose own time it never collides with)."""

    course_id: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    ignore: Collection[str] = ()


def timing_violations(rules: BookingRules, clinic: str, starts_at: datetime, now: datetime) -> list[Violation]:
    """Minimum notice and booking horizon, judged at `now` (when the clinic books)."""
    violations = []
    notice = timedelta(minutes=rules.min_notice_minutes)
    if notice and starts_at - now < notice:
        violations.append(Violation("min-notice", f"{clinic} books sessions at least {rules.min_notice_minutes} "
                                                  f"minutes ahead; this one starts {starts_at.isoformat()}"))
    if rules.horizon_days is not None and starts_at - now > timedelta(days=rules.horizon_days):
        violations.append(Violation("booking-horizon", f"{clinic} books sessions at most {rules.horizon_days} days "
                                                       f"ahead; this one starts {starts_at.isoformat()}"))
    return violations


def resource_violations(rules: BookingRules, calendar: Calendar, label: str, slot: Candidate, zone: ZoneInfo,
                        now: datetime | None) -> list[Violation]:
    """I10, the buffers and (a clinician's) the daily and weekly limits, for one clinician's or room's calendar."""
    violations = []
    before, after = rules.buffer(slot.kind)
    if (violation := calendar.violation(slot.starts_at, slot.ends_at, label, ignore=slot.ignore, now=now)):
        violations.append(violation)
    elif (before or after or calendar.buffered) and (
            close := calendar.buffer_clash(slot.starts_at, slot.ends_at, before, after, slot.ignore, now)):
        violations.append(Violation(
            "buffers", f"{label} needs its buffer between this session and session {close.session_id} "
                       f"({close.starts_at.isoformat()} to {close.ends_at.isoformat()}): {_minutes(before)} before "
                       f"and {_minutes(after)} after a {slot.kind} session, {_minutes(close.before)} before and "
                       f"{_minutes(close.after)} after that one"))
    if calendar.resource is Resource.CLINICIAN:
        day = local_day(slot.starts_at, zone)
        if rules.clinician_daily_limit is not None:
            start, end = day_span(day, zone)
            if calendar.count(start, end, slot.ignore, now) >= rules.clinician_daily_limit:
                violations.append(Violation("clinician-daily-limit", f"{label} already has "
                                            f"{rules.clinician_daily_limit} sessions on {day}, the clinic's limit"))
        if rules.clinician_weekly_limit is not None:
            monday = day - timedelta(days=day.weekday())
            start, end = day_span(monday, zone, days=7)
            if calendar.count(start, end, slot.ignore, now) >= rules.clinician_weekly_limit:
                violations.append(Violation("clinician-weekly-limit", f"{label} already has "
                                            f"{rules.clinician_weekly_limit} sessions in the week of {monday}, the "
                                            f"clinic's limit"))
    return violations


def hosted_violations(rules: BookingRules, ledger: Calendar, clinic: str, slot: Candidate, zone: ZoneInfo,
                      now: datetime | None, holder: str | None = None) -> list[Violation]:
    """What a host clinic's ledger of the sessions and holds it hosts for partner clinics limits: medicine
    sessions per local day, and (for a hold, by `holder`) open holds per partner clinic."""
    violations = []
    if slot.kind == "medicine" and rules.partner_medicine_daily_cap is not None:
        day = local_day(slot.starts_at, zone)
        start, end = day_span(day, zone)
        taken = ledger.count(start, end, slot.ignore, now, kind="medicine")
        if taken >= rules.partner_medicine_daily_cap:
            violations.append(Violation("partner-medicine-daily-cap", f"{clinic} hosts at most "
                                        f"{rules.partner_medicine_daily_cap} medicine sessions for partner clinics "
                                        f"on one day, and {day} is full"))
    if holder is not None:
        held = ledger.open_holds(holder, now, slot.ignore)
        if held >= rules.max_partner_holds:
            violations.append(Violation("holds-cap", f"{clinic} lets a partner clinic hold at most "
                                        f"{rules.max_partner_holds} slots at once; release or book one first"))
    return violations


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def day_span(day: date, zone: ZoneInfo, days: int = 1) -> tuple[datetime, datetime]:
    """[start, end) of `days` local days from `day`'s midnight (23, 24 or 25 elapsed hours a day), in UTC (two
    times of one zone subtract and compare by the wall clock)."""
    start = datetime.combine(day, time(0), zone).astimezone(timezone.utc)
    end = datetime.combine(day + timedelta(days=days), time(0), zone).astimezone(timezone.utc)
    return start, end


def _minutes(span: timedelta) -> str:
    return f"{int(span.total_seconds() // 60)} min"
