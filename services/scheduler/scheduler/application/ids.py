"""The ids of new resources: random, or, for a request with an Idempotency-Key, derived from it.

A request may be run twice: its first attempt's answer was lost (503 outcome-unknown, or the API stopped after
saving and before storing the answer) and the retry comes after the claim's lease ran out. Run again with
random ids it would create a second course (room, clinic...). Derived from the request, the second run names
the same resource, and the store refuses it (the id is taken) instead of keeping a duplicate.

The idempotency middleware seeds the request (`seeded`); the use cases ask `new_id` for each resource they
create, one id per purpose and request. Outside a seeded request (jobs, tests, requests without a key) ids
are random."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from uuid import UUID, uuid4, uuid5

_NAMESPACE = UUID("2d2efab7-251b-4f7e-9089-f6ffb698ee6c")  # kact's: ids of no other scheme collide with these
_SEED: ContextVar[UUID | None] = ContextVar("kact.id_seed", default=None)


def request_seed(principal: str, key: str, request_hash: str) -> UUID:
    """The seed of a request: who sent it, its Idempotency-Key, and what it is (method, path and body, as the
    key's claim compares them), so that another request under the same key names other resources."""
    return uuid5(_NAMESPACE, "\n".join((principal, key, request_hash)))


@contextmanager
def seeded(seed: UUID) -> Iterator[None]:
    """New ids within (this task, and the threads it hands work to with its context) derive from `seed`."""
    token = _SEED.set(seed)
    try:
        yield
    finally:
        _SEED.reset(token)


def new_id(purpose: str) -> UUID:
    """A new resource's id: the same for the same purpose in every run of a seeded request, else random."""
    seed = _SEED.get()
    return uuid4() if seed is None else uuid5(seed, purpose)
