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
    # Another clinic is not affected.
    assert ok(client.get("/v1/courses", headers=other.headers), 200) is not None
    # A POST over the limit is refused before its body is read or its Idempotency-Key is claimed ...
    time.sleep(retry_after)
    while client.get("/v1/courses", headers=flooding.headers).status_code != 429:
        pass  # spend what came back meanwhile
    time.sleep(retry_after)
    while client.get("/v1/courses", headers=flooding.headers).status_code != 429:
        pass  # again, so that no Retry-After is running: the next refusal is answered at once
    time.sleep(retry_after)
    for _ in range(int(RATE * retry_after)):
        assert client.get("/v1/courses", headers=flooding.headers).status_code == 200
    body = {"model": "together", "partners": {"a": "ra", "b": "rb"}}
    idempotent = {**flooding.headers, "Idempotency-Key": secrets.token_hex(8)}
    sent = time.monotonic()
    assert client.post("/v1/courses", json=body, headers=idempotent).status_code == 429
    assert time.monotonic() - sent < 0.5
    # ... and a client that sends again before its Retry-After is up is held until then, not refused at once
    # (a flood over many connections cannot take the server's time from others), then served: the refused
    # request left no Idempotency-Key "in progress".
    again = client.post("/v1/courses", json=body, headers=idempotent)
    assert again.status_code == 201, again.text
    assert time.monotonic() - sent >= retry_after - 0.1


def test_unknown_keys_from_one_address_are_refused_without_a_lookup_once_over_their_allowance(
    limited: LiveServer, client: httpx.Client
) -> None:
    statuses = []
    while 429 not in statuses:
        assert len(statuses) < 100, "never limited"
        response = client.get("/v1/courses", headers=bearer(f"kact_clinic_{secrets.token_hex(8)}"))
        statuses.append(response.status_code)
    assert set(statuses[:-1]) == {401} and len(statuses) > 10
    assert response.json()["violated-policies"] == ["unknown-key"] and "retry-after" in response.headers
    # Known keys from the same address are still served: only lookups of unknown keys are limited.
    assert client.get("/v1/deliveries", headers=bearer(limited.operator_token)).status_code == 200


def test_routes_that_need_no_key_answer_whatever_key_or_body_is_sent(limited: LiveServer, client: httpx.Client) -> None:
    """Health, the problem pages and the OpenAPI document need no key: one sent with them is not looked up or
    charged (never 401 or 429 there, as the contract says), and a body sent with a GET is not read (no 413, 415
    or 422)."""
    public = ("/health/live", "/health/ready", "/health/delivery", "/problems", "/problems/double-booking",
              "/schema/openapi.json", "/schema")
    bogus = bearer(f"kact_clinic_{secrets.token_hex(8)}")

    def answered(response: httpx.Response) -> bool:  # a health check may find the system unhealthy (its own 503)
        path = response.request.url.path
        return response.status_code == 200 or (path.startswith("/health/") and response.status_code == 503
                                               and response.json()["status"] == "unavailable")

    for path in public:
        response = client.get(path, headers=bogus)
        assert answered(response), (path, response.status_code, response.text)
        assert "ratelimit" not in response.headers, path
    tenant = Tenant.onboard(client, limited.operator_token, "Public pages")
    exhaust(client, tenant.headers)  # the key is over its limit ...
    for path in public:  # ... and these still answer it
        response = client.get(path, headers=tenant.headers)
        assert answered(response), (path, response.status_code, response.text)
    for content, media_type in ((b"{not json", "application/json"), (b"x" * 1_500_000, "text/plain")):
        response = client.request("GET", "/health/live", content=content,
                                  headers={**bogus, "Content-Type": media_type})
        assert response.status_code == 200, (media_type, response.status_code, response.text)
