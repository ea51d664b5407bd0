"""The key cache's rules, the batch of last uses, and who manages whose keys (no database)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest
from scheduler.api_keys import OPERATOR, KeyHolder, Principal, PrincipalCache, UsageLog
from scheduler.application.access import manages

CLINIC, OTHER_CLINIC, RX, OTHER_RX = (str(uuid4()) for _ in range(4))
T0 = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)


def holder() -> KeyHolder:
    return KeyHolder(uuid4(), Principal("clinic", CLINIC, CLINIC))


def listening_cache(ttl: float = 30.0) -> PrincipalCache:
    cache = PrincipalCache(ttl)
    cache.heard()
    return cache


def test_an_entry_is_kept_for_its_lifetime_only() -> None:
    cache, h = listening_cache(ttl=30), holder()
    cache.put("d", h, now=100.0, generation=cache.generation)
    assert cache.get("d", now=129.9) == h
    assert cache.get("d", now=130.0) is None and len(cache) == 0


def test_nothing_is_cached_while_revocations_may_go_unheard() -> None:
    cache, h = PrincipalCache(30), holder()
    cache.put("d", h, now=0.0, generation=cache.generation)
    assert cache.get("d", now=0.0) is None
    cache.heard()
    cache.put("d", h, now=0.0, generation=cache.generation)
    cache.deaf()  # the listening connection was lost: everything is forgotten
    assert cache.get("d", now=0.0) is None and len(cache) == 0


def test_a_revocation_drops_its_key_and_only_it() -> None:
    cache, h, kept = listening_cache(), holder(), holder()
    cache.put("d", h, now=0.0, generation=cache.generation)
    cache.put("k", kept, now=0.0, generation=cache.generation)
    cache.revoked(h.key_id)
    assert cache.get("d", now=1.0) is None and cache.get("k", now=1.0) == kept
    cache.revoked(uuid4())  # a key this process never saw
    assert cache.get("k", now=1.0) == kept


def test_a_lookup_that_overlapped_a_revocation_is_not_cached() -> None:
    cache, h = listening_cache(), holder()
    began = cache.generation  # the lookup reads the key ...
    cache.revoked(h.key_id)  # ... the revocation is heard before it returns
    cache.put("d", h, now=0.0, generation=began)
    assert cache.get("d", now=0.0) is None


def test_uses_are_taken_in_one_batch_and_a_failed_batch_is_put_back_without_losing_later_uses() -> None:
    usage, a, b = UsageLog(), uuid4(), uuid4()
    for second in range(100):
        usage.used(a, T0 + timedelta(seconds=second))
    usage.used(b, T0)
    batch = usage.take()
    assert batch == {a: T0 + timedelta(seconds=99), b: T0} and usage.take() == {}
    usage.used(a, T0 + timedelta(seconds=200))  # used again while the batch was being written
    usage.restore(batch)  # ... and the write failed
    assert usage.take() == {a: T0 + timedelta(seconds=200), b: T0}


@pytest.mark.parametrize(
    ("principal", "kind", "owner", "owner_clinic", "allowed"),
    [
        (OPERATOR, "clinic", CLINIC, CLINIC, True),
        (OPERATOR, "prescriber", RX, CLINIC, True),
        (Principal("clinic", CLINIC, CLINIC), "clinic", CLINIC, CLINIC, True),
        (Principal("clinic", CLINIC, CLINIC), "prescriber", RX, CLINIC, True),  # its prescriber's
        (Principal("clinic", OTHER_CLINIC, OTHER_CLINIC), "clinic", CLINIC, CLINIC, False),
        (Principal("clinic", OTHER_CLINIC, OTHER_CLINIC), "prescriber", RX, CLINIC, False),
        (Principal("prescriber", RX, CLINIC), "prescriber", RX, CLINIC, True),
        (Principal("prescriber", RX, CLINIC), "clinic", CLINIC, CLINIC, False),  # not its clinic's
        (Principal("prescriber", OTHER_RX, CLINIC), "prescriber", RX, CLINIC, False),  # nor a colleague's
    ],
)
def test_who_manages_whose_keys(principal: Principal, kind: str, owner: str, owner_clinic: str, allowed: bool) -> None:
    assert manages(principal, kind, owner, owner_clinic) is allowed
