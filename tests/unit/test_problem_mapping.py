"""The one mapping from errors to problem details: what a failing database or a stale write answers."""

from __future__ import annotations

import asyncpg
import eventsourcing.persistence as persistence
import psycopg
import psycopg_pool
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from scheduler.application.errors import OutcomeUnknownError, StoreUnavailableError
from scheduler.http.problems import EXCEPTION_HANDLERS

RAISED: dict[str, Exception] = {
    "pool-timeout": persistence.OperationalError("couldn't get a connection after 1.00 sec"),
    "connection-refused": ConnectionRefusedError(111, "Connection refused"),
    "statement-timeout": asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
    "starting-up": asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    "store-unavailable": StoreUnavailableError("no attempt in time"),
    "outcome-unknown": OutcomeUnknownError("server closed the connection unexpectedly"),
    "internal": persistence.InternalError("server crashed"),
    "generic-persistence": persistence.PersistenceError("lost"),
    "psycopg-closed": psycopg.InterfaceError("the connection is closed"),
    "psycopg-pool": psycopg_pool.PoolTimeout("couldn't get a connection"),
    "stale-write": persistence.IntegrityError("duplicate key value violates unique constraint"),
    "value-out-of-range": asyncpg.exceptions.DataError("value out of int64 range"),
    "a-bug": persistence.ProgrammingError("syntax error"),
}


@get("/raise/{name:str}", sync_to_thread=False)
def raising(name: str) -> None:
    raise RAISED[name]


@pytest.fixture(scope="module")
def client():
    with TestClient(Litestar([raising], exception_handlers=EXCEPTION_HANDLERS)) as test_client:  # type: ignore[arg-type]
        yield test_client


@pytest.mark.parametrize(("name", "status", "type_"), [
    ("pool-timeout", 503, "unavailable"), ("connection-refused", 503, "unavailable"),
    ("statement-timeout", 503, "unavailable"), ("starting-up", 503, "unavailable"),
    ("store-unavailable", 503, "unavailable"), ("outcome-unknown", 503, "outcome-unknown"),
    ("internal", 503, "unavailable"), ("generic-persistence", 503, "unavailable"),
    ("psycopg-closed", 503, "unavailable"), ("psycopg-pool", 503, "unavailable"),
    ("stale-write", 409, "version-conflict"), ("value-out-of-range", 422, "invalid-input"),
    ("a-bug", 500, "internal"),
])
def test_each_failure_answers_its_problem(client, name: str, status: int, type_: str) -> None:
    response = client.get(f"/raise/{name}")
    assert response.status_code == status
    assert response.json()["type"] == f"/problems/{type_}"
    assert response.headers["content-type"].startswith("application/problem+json")
    if status == 503:
        assert response.headers["retry-after"] == "2"
