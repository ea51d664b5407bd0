"""The token bucket behind the per-key rate limits: what it allows over any window, and what it reports."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from scheduler.directory import OPERATOR, Principal
from scheduler.http.ratelimit import Limit, RateLimits, TokenBuckets

limits = st.builds(Limit, st.just("default"), st.floats(0.5, 200), st.integers(1, 300))
gaps = st.lists(st.floats(0, 0.5), min_size=1, max_size=200)


@given(limits, gaps)
def test_never_more_than_burst_plus_rate_times_t_in_any_window_of_length_t(limit: Limit, steps: list[float]) -> None:
    buckets = TokenBuckets()
    times = list(itertools.accumulate(steps))
    allowed = [at for at in times if buckets.take("k", limit, at).allowed]
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            window = allowed[j] - start
            assert j - i + 1 <= limit.burst + limit.rate * window + 1e-6, (i, j, window)


@given(limits, st.integers(1, 50))
def test_a_client_at_the_sustained_rate_is_never_refused(limit: Limit, count: int) -> None:
    buckets = TokenBuckets()
    assert all(buckets.take("k", limit, n / limit.rate).allowed for n in range(count))


def test_a_burst_is_allowed_at_once_then_one_request_per_refill() -> None:
    limit, buckets = Limit("default", 10, 5), TokenBuckets()
    assert [buckets.take("k", limit, 0.0).allowed for _ in range(6)] == [True] * 5 + [False]
    refused = buckets.take("k", limit, 0.0)
    assert refused.retry_after == 1 and refused.header == b'"default";r=0;t=1'
    assert buckets.take("k", limit, 0.1).allowed and not buckets.take("k", limit, 0.1).allowed
    assert buckets.take("other", limit, 0.1).allowed  # every key has its own bucket


def test_the_headers_say_what_is_left_and_when_the_burst_is_back() -> None:
    limit, buckets = Limit("default", 100, 200), TokenBuckets()
    assert limit.policy == b'"default";q=200;w=2'
    assert buckets.take("k", limit, 0.0).header == b'"default";r=199;t=1'
    for _ in range(150):
        decision = buckets.take("k", limit, 0.0)
    assert decision.header == b'"default";r=49;t=2'
    assert buckets.take("k", limit, 10.0).header == b'"default";r=199;t=1'  # never more than the burst


def test_limits_are_shared_by_the_workers_and_the_operator_has_its_own() -> None:
    limits = RateLimits.configure(100, 200, 500, 1000, workers=2)
    assert limits is not None
    assert (limits.key.rate, limits.key.burst) == (50, 100)
    assert limits.for_principal(OPERATOR).name == "operator" and limits.for_principal(OPERATOR).rate == 250
    assert limits.for_principal(Principal("clinic", "c1", "c1")) is limits.key
    assert RateLimits.configure(0, 200, 500, 1000) is None  # 0: no limits


def test_full_buckets_are_forgotten_once_there_are_many(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from scheduler.http import ratelimit

    monkeypatch.setattr(ratelimit, "PRUNE_ABOVE", 10)
    limit, buckets = Limit("default", 10, 5), TokenBuckets()
    for n in range(20):
        buckets.take(f"address:{n}", limit, 0.0)
    buckets.take("late", limit, 5.0)  # the others are full again by now
    assert len(buckets) == 1
