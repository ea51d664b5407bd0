"""Rate limits per API key against a real server: a token bucket per principal, 429 problems with Retry-After,
the RateLimit headers on every authenticated response, and another clinic unaffected."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import psycopg
import pytest
from api_support import Tenant, bearer, ok
from conftest import LiveServer, serve, server_settings
from psycopg import sql

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RATE, BURST = 2.0, 6  # per key: small enough to exceed in a test, enough to onboard a tenant


@pytest.fixture(scope="module")
def limited(database_url: str, nats_url: str) -> Iterator[LiveServer]:
    settings = replace(server_settings(database_url, nats_url, f"rl_{secrets.token_hex(4)}"),
                       rate_limit=RATE, rate_burst=BURST)
    with serve(settings) as server:
        yield server
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.db_schema)))


@pytest.fixture
def client(limited: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited.base_url, timeout=30) as client:
        yield client


def exhaust(client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    """Send cheap reads until the key is refused; the refusal."""
    for _ in range(BURST + 10):
        response = client.get("/v1/courses", headers=headers)
        if response.status_code == 429:
            return response
        assert response.status_code == 200, response.text
    raise AssertionError("never limited")


def test_every_authenticated_response_carries_the_policy_and_what_is_left(
    limited: LiveServer, client: httpx.Client
) -> None:
    tenant = Tenant.onboard(client, limited.operator_token)
    time.sleep(BURST / RATE)  # the bucket is full again
    first = client.get("/v1/courses", headers=tenant.headers)
    second = client.get("/v1/courses", headers=tenant.headers)
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["ratelimit-policy"] == f'"default";q={BURST};w={int(BURST / RATE)}'
    assert re.fullmatch(rf'"default";r={BURST - 1};t=1', first.headers["ratelimit"]), first.headers["ratelimit"]
    assert re.fullmatch(rf'"default";r={BURST - 2};t=1', second.headers["ratelimit"]), second.headers["ratelimit"]
    # Refusals and errors count and carry the headers too; the operator's key has a policy of its own.
    missing = client.get("/v1/courses/00000000-0000-0000-0000-000000000000", headers=tenant.headers)
    assert missing.status_code == 404 and missing.headers["ratelimit"].startswith('"default";r=')
    operator = client.get("/v1/deliveries", headers=bearer(limited.operator_token))
    assert operator.status_code == 200 and operator.headers["ratelimit-policy"].startswith('"operator";q=')
    # No key: no limit to report (and nothing looked up).
    anonymous = client.get("/v1/courses")
    assert anonymous.status_code == 401 and "ratelimit" not in anonymous.headers


def test_a_key_over_its_limit_is_refused_with_429_while_another_clinic_is_served(
    limited: LiveServer, client: httpx.Client
) -> None:
    flooding, other = (Tenant.onboard(client, limited.operator_token, name) for name in ("Flooding", "Quiet"))
    refused = exhaust(client, flooding.headers)
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "/problems/rate-limited" and problem["status"] == 429
    assert problem["violated-policies"] == ["default"]
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 1 / RATE + 1
    assert refused.headers["ratelimit"] == f'"default";r=0;t={retry_after}'
    assert refused.headers["ratelimit-policy"].startswith('"default";q=')
    # A POST over the limit is refused before its body is read or its Idempotency-Key is claimed ...
    body = {"model": "together", "partners": {"a": "ra", "b": "rb"}}
    idempotent = {**flooding.headers, "Idempotency-Key": secrets.token_hex(8)}
    assert client.post("/v1/courses", json=body, headers=idempotent).status_code == 429
    # ... another clinic is not affected ...
    assert ok(client.get("/v1/courses", headers=other.headers), 200) is not None
    # ... and after Retry-After the same request goes through (the key was not left "in progress").
    time.sleep(retry_after)
    assert client.post("/v1/courses", json=body, headers=idempotent).status_code == 201


def test_unknown_keys_from_one_address_are_refused_without_a_lookup_once_over_their_allowance(
    limited: LiveServer, client: httpx.Client
) -> None:
    statuses = [client.get("/v1/courses", headers=bearer(f"kact_clinic_{secrets.token_hex(8)}")).status_code
                for _ in range(100)]
    assert statuses[0] == 401 and statuses[-1] == 429 and set(statuses) == {401, 429}
    unknown = client.get("/v1/courses", headers=bearer("not-a-key"))
    assert unknown.status_code == 429 and unknown.json()["violated-policies"] == ["unknown-key"]
    # Known keys from the same address are still served: only lookups of unknown keys are limited.
    assert client.get("/v1/deliveries", headers=bearer(limited.operator_token)).status_code == 200
