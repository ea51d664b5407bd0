"""The event chain, pure: each stored event's digest, the links that chain them in notification order, the signed
heads that anchor the chain, and the walk that checks stored events against the chain and the heads.

    digest_n = SHA-256(notification_id | originator_id | originator_version | len(topic) | topic | state)
    link_n   = SHA-256(link_(n-1) | digest_n),  link_0 = GENESIS

over every stored event of the application (courses and calendars), the state being the ciphertext as stored:
checking needs no cipher key and still works once a course's key is gone. The chain keeps each event's digest
beside its link, so a check tells an edited event (its digest differs) from a chain that lost a row (the digest
holds, the link does not follow), and a single course can be checked against a signed head without reading the
other events between (their digests are committed to by the head's link)."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

GENESIS = hashlib.sha256(b"kact event chain v1").digest()
_HEAD_DOMAIN = b"kact event chain head v1\n"
_FIXED = struct.Struct(">q16sqI")  # notification id, originator id, originator version, topic length

# What a check finds wrong, each named by the first notification id it concerns.
EDITED = "edited"
MISSING = "missing"
INSERTED = "inserted"
OUT_OF_ORDER = "out of order"
CHAIN_ALTERED = "chain altered"
HEAD_MISMATCH = "head mismatch"
HEAD_FORGED = "head forged"
HEAD_LOG_DAMAGED = "head log damaged"


@dataclass(frozen=True)
class StoredRow:
    """A row of the events table, as stored."""

    notification_id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes

    def __str__(self) -> str:
        return f"{self.originator_id} v{self.originator_version}, {self.topic}"


@dataclass(frozen=True)
class ChainRow:
    """A row of `event_chain`: which event was chained at a notification id, its digest and its link."""

    notification_id: int
    originator_id: UUID
    originator_version: int
    digest: bytes
    link: bytes

    def __str__(self) -> str:
        return f"{self.originator_id} v{self.originator_version}"


def event_digest(event: StoredRow) -> bytes:
    topic = event.topic.encode()
    digest = hashlib.sha256(_FIXED.pack(event.notification_id, event.originator_id.bytes, event.originator_version,
                                        len(topic)))
    digest.update(topic)
    digest.update(event.state)  # the last field: its length is the rest
    return digest.digest()


def next_link(previous: bytes, digest: bytes) -> bytes:
    return hashlib.sha256(previous + digest).digest()


def extend(previous: bytes, events: Iterable[StoredRow]) -> list[ChainRow]:
    """The chain rows of `events` (in notification order), continuing from the link `previous`."""
    rows = []
    for event in events:
        digest = event_digest(event)
        previous = next_link(previous, digest)
        rows.append(ChainRow(event.notification_id, event.originator_id, event.originator_version, digest, previous))
    return rows


@dataclass(frozen=True)
class Head:
    """The chain's head at `position` (the last event chained), as signed at `signed_at` with the audit key."""

    schema: str
    position: int
    link: bytes
    signed_at: datetime
    mac: bytes
    source: str = field(default="", compare=False)  # where it was read: a line of the head log, the table

    @classmethod
    def sign(cls, key: bytes, schema: str, position: int, link: bytes, signed_at: datetime) -> Head:
        return cls(schema, position, link, signed_at, _mac(key, schema, position, link, signed_at))

    def valid(self, key: bytes) -> bool:
        return hmac.compare_digest(self.mac, _mac(key, self.schema, self.position, self.link, self.signed_at))

    def to_line(self) -> str:
        return json.dumps({"schema": self.schema, "position": self.position, "link": self.link.hex(),
                           "signed_at": _instant(self.signed_at), "mac": self.mac.hex()}, separators=(",", ":"))

    @classmethod
    def from_line(cls, line: str, source: str = "") -> Head:
        """A head from its line in the head log; ValueError if the line is not one."""
        try:
            fields = json.loads(line)
            return cls(str(fields["schema"]), int(fields["position"]), bytes.fromhex(fields["link"]),
                       datetime.fromisoformat(fields["signed_at"]), bytes.fromhex(fields["mac"]), source)
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
            raise ValueError(f"not a signed head: {error}") from None

    def __str__(self) -> str:
        return f"{self.position} ({self.link.hex()[:12]}…) signed at {_instant(self.signed_at)}"


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _mac(key: bytes, schema: str, position: int, link: bytes, signed_at: datetime) -> bytes:
    message = _HEAD_DOMAIN + f"{schema}\n{position}\n{link.hex()}\n{_instant(signed_at)}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class Break:
    """Something wrong, named by the notification id it concerns (None: a head log line that is no head)."""

    notification_id: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"event {self.notification_id}" if self.notification_id is not None else "head log"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class Verdict:
    """What a check found: the events it checked against the chain, the latest signed head they lead to, and
    what is wrong (first broken link first)."""

    events: int
    head: Head | None
    breaks: tuple[Break, ...] = ()
    unchained: int = 0  # stored after the chain's end: the chain job has not reached them yet
    unsigned: int = 0  # chained after the latest signed head: anchored by the next one

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def status(self) -> str:
        return "ok" if self.ok else "broken"

    @property
    def first_broken(self) -> Break | None:
        return self.breaks[0] if self.breaks else None


def in_order(breaks: Iterable[Break]) -> tuple[Break, ...]:
    return tuple(sorted(breaks, key=lambda b: -1 if b.notification_id is None else b.notification_id))


def forged(heads: Iterable[Head], key: bytes) -> list[Break]:
    return [Break(h.position, HEAD_FORGED, f"the head of event {h.position} dated {_instant(h.signed_at)} "
                                           f"({h.source}) fails its signature: not signed with the audit key")
            for h in heads if not h.valid(key)]


class Locator(Protocol):
    """Where an event is, for naming what a walk found: the notification id at which the chain holds an
    originator's version, and the one at which the store holds it (None: nowhere)."""

    def chained_at(self, originator_id: UUID, version: int) -> int | None: ...

    def stored_at(self, originator_id: UUID, version: int) -> int | None: ...


@dataclass
class Walk:
    """How far a walk got: the events it checked, the last head they matched, and the break it stopped at."""

    checked: int = 0
    head: Head | None = None
    broken: Break | None = None
    unchained: int = 0
    unsigned: int = 0


def walk(events: Iterable[StoredRow], chain: Iterable[ChainRow], heads: Sequence[Head], locator: Locator, *,
         start: bytes = GENESIS, complete: Callable[[UUID], bool] = lambda originator: True,
         chained_until: int = 0, progress: Callable[[int], None] | None = None) -> Walk:
    """Checks `events` against `chain` (both in notification order, from the same point, `start` being the link
    before it) and the chain against the signed `heads` (valid ones), stopping at the first broken link.

    `complete(originator)` says whether `events` holds every stored event of that originator (one course's check
    passes only that course's events: the others' digests come from the chain, and the heads vouch for them).
    A stored event without a chain row at or before `chained_until` (the chain's end, or the latest head if
    later) was inserted after the fact; one after it is not chained yet."""
    result = Walk()
    pending = deque(sorted(heads, key=lambda h: h.position))
    link, last = start, None
    for n, (nid, event, row) in enumerate(_merged(events, chain)):
        if progress is not None and n % 2000 == 0:
            progress(nid)
        if pending and pending[0].position < nid:
            result.broken = _head_lost(pending[0], last)
            return result
        if row is None:
            assert event is not None
            if nid <= chained_until:
                result.broken = Break(nid, INSERTED, f"event {nid} ({event}) is stored but was never chained: "
                                                     "added after the fact (or its chain row removed)")
                return result
            result.unchained += 1
            continue
        if event is None:
            if complete(row.originator_id):
                result.broken = _missing(row, locator)
                return result
            digest = row.digest
        else:
            if (event.originator_id, event.originator_version) != (row.originator_id, row.originator_version):
                result.broken = _misplaced(event, row, locator)
                return result
            digest = event_digest(event)
            if digest != row.digest:
                result.broken = Break(nid, EDITED, f"event {nid} ({event}) is not what was chained there: its "
                                                   "stored content was changed")
                return result
            result.checked += 1
        link = next_link(link, digest)
        if link != row.link:
            after = f"event {last}'s" if last is not None else "the chain's start"
            result.broken = Break(nid, CHAIN_ALTERED, f"the link of event {nid} ({row}) does not follow from "
                                                      f"{after}: an event chained between them was removed with "
                                                      "its chain row, or the chain rows were altered")
            return result
        last = nid
        if complete(row.originator_id):
            result.unsigned += 1
        while pending and pending[0].position == nid:
            head = pending.popleft()
            if head.link != link:
                result.broken = Break(nid, HEAD_MISMATCH, f"the chain recomputed from the stored events up to "
                                                          f"event {nid} is not the head signed at "
                                                          f"{_instant(head.signed_at)} ({head.source}): events up "
                                                          "to it were changed and the chain rows rewritten to match")
                return result
            result.head, result.unsigned = head, 0
    if pending:
        result.broken = _head_lost(pending[0], last)
    return result


def _merged(events: Iterable[StoredRow], chain: Iterable[ChainRow]
            ) -> Iterator[tuple[int, StoredRow | None, ChainRow | None]]:
    """Both sequences side by side by notification id: (id, the event stored there, the chain row there)."""
    events_, chain_ = iter(events), iter(chain)
    event, row = next(events_, None), next(chain_, None)
    while event is not None or row is not None:
        if row is None or (event is not None and event.notification_id < row.notification_id):
            assert event is not None
            yield event.notification_id, event, None
            event = next(events_, None)
        elif event is None or row.notification_id < event.notification_id:
            yield row.notification_id, None, row
            row = next(chain_, None)
        else:
            yield event.notification_id, event, row
            event, row = next(events_, None), next(chain_, None)


def _head_lost(head: Head, last: int | None) -> Break:
    before = f"the last event before it is {last}" if last is not None else "no event is left before it"
    return Break(head.position, MISSING, f"the head signed at {_instant(head.signed_at)} ({head.source}) ends at "
                                         f"event {head.position}, which is gone with its chain row ({before})")


def _missing(row: ChainRow, locator: Locator) -> Break:
    elsewhere = locator.stored_at(row.originator_id, row.originator_version)
    if elsewhere is not None:
        return Break(row.notification_id, OUT_OF_ORDER, f"{row}, chained at event {row.notification_id}, is "
                                                        f"stored at event {elsewhere}")
    return Break(row.notification_id, MISSING, f"event {row.notification_id} ({row}) was chained and is gone "
                                               "from the store")


def _misplaced(event: StoredRow, row: ChainRow, locator: Locator) -> Break:
    nid = event.notification_id
    chained = locator.chained_at(event.originator_id, event.originator_version)
    if chained is not None:
        return Break(nid, OUT_OF_ORDER, f"event {nid} holds {event}, which was chained at event {chained}; the "
                                        f"chain has {row} there")
    return Break(nid, EDITED, f"event {nid} was replaced: it holds {event}, never chained; the chain has {row} "
                              "there")
