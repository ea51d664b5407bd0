"""The event chain's pure parts: digests, links, signed heads, and the walk that names the first broken link."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from scheduler.chain import links
from scheduler.chain.links import ChainRow, Head, StoredRow

KEY = b"k" * 32
T = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
COURSE, OTHER = uuid4(), uuid4()


class Memory:
    def __init__(self, events: list[StoredRow], chain: list[ChainRow]) -> None:
        self.events, self.chain = events, chain

    def chained_at(self, originator_id: UUID, version: int) -> int | None:
        return next((r.notification_id for r in self.chain
                     if (r.originator_id, r.originator_version) == (originator_id, version)), None)

    def stored_at(self, originator_id: UUID, version: int) -> int | None:
        return next((e.notification_id for e in self.events
                     if (e.originator_id, e.originator_version) == (originator_id, version)), None)


def store(count: int = 10) -> list[StoredRow]:
    """Two streams interleaved, ids with a gap after 5 (a rolled-back insert leaves one)."""
    events, versions = [], {COURSE: 0, OTHER: 0}
    for n in range(1, count + 1):
        originator = COURSE if n % 3 else OTHER
        versions[originator] += 1
        nid = n if n <= 5 else n + 1
        events.append(StoredRow(nid, originator, versions[originator], f"kact.course:Event{n}.v1", bytes([n]) * 40))
    return events


def head_at(chain: list[ChainRow], nid: int, key: bytes = KEY) -> Head:
    row = next(r for r in chain if r.notification_id == nid)
    return Head.sign(key, "kact", nid, row.link, T + timedelta(seconds=nid))


def check(events: list[StoredRow], chain: list[ChainRow], heads: list[Head],
          complete: Callable[[UUID], bool] = lambda originator: True) -> links.Walk:
    until = max([chain[-1].notification_id if chain else 0, *(h.position for h in heads)])
    return links.walk(events, chain, heads, Memory(events, chain), chained_until=until, complete=complete)


def test_a_digest_covers_every_field_of_the_stored_event_and_their_boundaries() -> None:
    event = StoredRow(7, COURSE, 3, "kact.course:SessionBooked.v1", b"ciphertext")
    variants = [dataclasses.replace(event, notification_id=8), dataclasses.replace(event, originator_id=OTHER),
                dataclasses.replace(event, originator_version=4), dataclasses.replace(event, topic="kact.course:X.v1"),
                dataclasses.replace(event, state=b"ciphertexT"),
                # the same bytes split differently between topic and state
                dataclasses.replace(event, topic=event.topic + "c", state=b"iphertext")]
    digests = {links.event_digest(e) for e in [event, *variants]}
    assert len(digests) == 1 + len(variants)
    assert links.event_digest(event) == links.event_digest(dataclasses.replace(event))


def test_a_chain_extended_in_parts_is_the_chain_extended_at_once() -> None:
    events = store()
    whole = links.extend(links.GENESIS, events)
    first = links.extend(links.GENESIS, events[:4])
    assert first + links.extend(first[-1].link, events[4:]) == whole
    assert whole[0].link == links.next_link(links.GENESIS, links.event_digest(events[0]))
    assert len({r.link for r in whole}) == len(events)


def test_a_head_is_valid_only_as_signed_with_its_key() -> None:
    head = Head.sign(KEY, "kact", 12, b"\x01" * 32, T)
    assert head.valid(KEY)
    assert not head.valid(b"j" * 32)
    for changed in (dataclasses.replace(head, schema="other"), dataclasses.replace(head, position=13),
                    dataclasses.replace(head, link=b"\x02" * 32),
                    dataclasses.replace(head, signed_at=T + timedelta(days=1))):
        assert not changed.valid(KEY)
    again = Head.from_line(head.to_line(), "audit-heads.log line 1")
    assert again == head and again.valid(KEY) and again.source == "audit-heads.log line 1"
    with pytest.raises(ValueError):
        Head.from_line('{"schema": "kact", "position": 1}')
    with pytest.raises(ValueError):
        Head.from_line("not json")
    assert links.forged([head, dataclasses.replace(head, position=13)], KEY)[0].notification_id == 13


def test_an_untouched_store_walks_through_every_head() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events)
    heads = [head_at(chain, 4), head_at(chain, 9)]
    result = check(events, chain, heads)
    assert result.broken is None
    assert (result.checked, result.head, result.unsigned, result.unchained) == (10, heads[1], 2, 0)


def test_events_after_the_chain_s_end_are_not_chained_yet_and_break_nothing() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events[:7])
    result = check(events, chain, [head_at(chain, 8)])
    assert result.broken is None and (result.checked, result.unchained, result.unsigned) == (7, 3, 0)


def _first(result: links.Walk) -> tuple[int | None, str]:
    assert result.broken is not None
    return result.broken.notification_id, result.broken.kind


def test_an_edited_event_is_named_as_edited() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events)
    events[5] = dataclasses.replace(events[5], state=b"forged" + events[5].state[6:])
    assert _first(check(events, chain, [head_at(chain, 11)])) == (7, links.EDITED)


def test_a_deleted_event_is_named_as_missing() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events)
    del events[3]
    assert _first(check(events, chain, [head_at(chain, 11)])) == (4, links.MISSING)


def test_an_event_deleted_with_its_chain_row_breaks_the_next_link() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events)
    del events[3], chain[3]
    result = check(events, chain, [head_at(chain, 11)])
    assert _first(result) == (5, links.CHAIN_ALTERED)
    assert result.broken is not None and "event 3's" in result.broken.detail


def test_an_event_inserted_between_chained_ones_is_named_as_inserted() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events)
    forged = StoredRow(6, COURSE, 99, "kact.course:Event1.v1", events[0].state)  # in the gap
    result = check(sorted([*events, forged], key=lambda e: e.notification_id), chain, [head_at(chain, 11)])
    assert _first(result) == (6, links.INSERTED)


def test_two_events_swapped_are_named_out_of_order_at_the_first() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events)
    a, b = events[2], events[7]
    events[2] = dataclasses.replace(b, notification_id=a.notification_id)
    events[7] = dataclasses.replace(a, notification_id=b.notification_id)
    result = check(events, chain, [head_at(chain, 11)])
    assert _first(result) == (3, links.OUT_OF_ORDER)
    assert result.broken is not None and "chained at event 9" in result.broken.detail


def test_the_newest_events_deleted_with_their_chain_rows_are_caught_by_the_head() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events)
    head = head_at(chain, 11)
    result = check(events[:-3], chain[:-3], [head_at(chain, 4), head])
    assert _first(result) == (11, links.MISSING)
    assert result.broken is not None and "the last event before it is 8" in result.broken.detail
    # without a head past them, the tail is simply shorter: what a signed head is for
    assert check(events[:-3], chain[:-3], [head_at(chain, 4)]).broken is None


def test_an_edit_whose_chain_was_rewritten_to_match_is_caught_by_the_head() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events)
    heads = [head_at(chain, 2), head_at(chain, 9)]
    events[4] = dataclasses.replace(events[4], state=b"forged")
    rewritten = links.extend(links.GENESIS, events)
    result = check(events, rewritten, heads)
    assert _first(result) == (9, links.HEAD_MISMATCH)
    assert check(events, rewritten, heads[:1]).broken is None  # unanchored, a rewrite would pass


def test_one_stream_is_checked_with_the_others_digests_from_the_chain() -> None:
    events = store()
    chain = links.extend(links.GENESIS, events)
    heads = [head_at(chain, 11)]
    mine = [e for e in events if e.originator_id == COURSE]
    result = check(mine, chain, heads, complete=lambda o: o == COURSE)
    assert result.broken is None and (result.checked, result.head) == (len(mine), heads[0])
    # another stream's digest altered in the chain: the head no longer follows
    altered = [dataclasses.replace(r, digest=b"\x00" * 32) if r.notification_id == 3 else r for r in chain]
    assert _first(check(mine, altered, heads, complete=lambda o: o == COURSE))[1] == links.CHAIN_ALTERED
    relinked = links.extend(links.GENESIS, [dataclasses.replace(e, state=b"x") if e.notification_id == 3 else e
                                            for e in events])
    assert _first(check(mine, relinked, heads, complete=lambda o: o == COURSE)) == (11, links.HEAD_MISMATCH)
