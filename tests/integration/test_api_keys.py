"""API keys over HTTP: listing, issuing, rotating and revoking them, who may, and a revocation reaching another
API process within a second."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import Tenant, bearer, ok
from conftest import LiveServer
from processes import api_process
from scheduler.api_keys import MAX_ACTIVE_KEYS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def home(client: httpx.Client, live_server: LiveServer) -> Tenant:
    return Tenant.onboard(client, live_server.operator_token)


@pytest.fixture
def other(client: httpx.Client, live_server: LiveServer) -> Tenant:
    return Tenant.onboard(client, live_server.operator_token, "Other practice")


def whoami(client: httpx.Client, key: str) -> int:
    """The status of a cheap authenticated read with `key` (200, or 401 once it is revoked)."""
    return client.get("/v1/feed", headers=bearer(key)).status_code


def keys_of(client: httpx.Client, path: str, key: str) -> list[dict]:
    return ok(client.get(f"{path}/keys", headers=bearer(key)), 200)


def test_a_clinic_rotates_its_key_without_downtime(home: Tenant, client: httpx.Client) -> None:
    clinic = f"/v1/clinics/{home.clinic['id']}"
    old_key = home.clinic["api_key"]
    # the key made at onboarding is listed, issued by the operator, never with its secret
    (first,) = keys_of(client, clinic, old_key)
    assert first["owner"] == f"clinic:{home.clinic['id']}" and first["created_by"] == "operator:root"
    assert first["revoked_at"] is None and first["revoked_by"] is None
    # a second key: shown once; the first still works
    issued = ok(client.post(f"{clinic}/keys", json={"label": "booking system 2026-12"}, headers=bearer(old_key)), 201)
    new_key = issued["api_key"]
    assert new_key.startswith("kact_clinic_") and issued["created_by"] == f"clinic:{home.clinic['id']}"
    assert issued["label"] == "booking system 2026-12"
    assert whoami(client, old_key) == 200 and whoami(client, new_key) == 200
    listing = client.get(f"{clinic}/keys", headers=bearer(new_key))
    assert [k["id"] for k in listing.json()] == [first["id"], issued["id"]]
    for secret in (old_key, new_key):
        assert secret not in listing.text and hashlib.sha256(secret.encode()).hexdigest() not in listing.text
    assert all("api_key" not in k for k in listing.json())
    # the clinic moves to the new key and revokes the old one with it
    revoked = client.delete(f"/v1/keys/{first['id']}", headers=bearer(new_key))
    assert revoked.status_code == 204, revoked.text
    refused = client.get("/v1/feed", headers=bearer(old_key))
    assert refused.status_code == 401 and refused.json()["type"] == "/problems/unauthorized"
    assert whoami(client, new_key) == 200
    # revoking again is a no-op that keeps the first revocation
    assert client.delete(f"/v1/keys/{first['id']}", headers=bearer(new_key)).status_code == 204
    (old, new) = keys_of(client, clinic, new_key)
    assert old["revoked_by"] == f"clinic:{home.clinic['id']}" and old["revoked_at"] is not None
    assert new["revoked_at"] is None
    # a revoked key cannot act even through the idempotency layer
    replay = client.post("/v1/courses", json={"model": "together", "partners": {"a": "x", "b": "y"}},
                         headers={**bearer(old_key), "Idempotency-Key": "k1"})
    assert replay.status_code == 401


def test_keys_are_invisible_to_other_clinics_and_prescribers(
    home: Tenant, other: Tenant, client: httpx.Client
) -> None:
    clinic, prescriber = f"/v1/clinics/{home.clinic['id']}", f"/v1/prescribers/{home.prescriber['id']}"
    (clinic_key,) = keys_of(client, clinic, home.clinic["api_key"])
    (rx_key,) = keys_of(client, prescriber, home.prescriber["api_key"])
    strangers = {"another clinic": other.clinic["api_key"], "its prescriber": other.prescriber["api_key"],
                 "this clinic's prescriber": home.prescriber["api_key"]}
    for who, key in strangers.items():
        for response in (
            client.get(f"{clinic}/keys", headers=bearer(key)),
            client.post(f"{clinic}/keys", json={}, headers=bearer(key)),
            client.delete(f"/v1/keys/{clinic_key['id']}", headers=bearer(key)),
        ):
            assert response.status_code == 404, f"{who}: {response.request.method} {response.request.url}"
            assert response.json()["type"] == "/problems/not-found"
    for key in (other.clinic["api_key"], other.prescriber["api_key"]):
        for response in (
            client.get(f"{prescriber}/keys", headers=bearer(key)),
            client.post(f"{prescriber}/keys", json={}, headers=bearer(key)),
            client.delete(f"/v1/keys/{rx_key['id']}", headers=bearer(key)),
        ):
            assert response.status_code == 404, response.text
    # a second prescriber of the same clinic sees nothing of the first one's keys
    colleague = ok(home.post(f"/v1/clinics/{home.clinic['id']}/clinicians", {"name": "Dr C", "role": "prescriber"}),
                   201)
    assert client.get(f"{prescriber}/keys", headers=bearer(colleague["api_key"])).status_code == 404
    assert client.delete(f"/v1/keys/{rx_key['id']}", headers=bearer(colleague["api_key"])).status_code == 404
    # nothing was revoked, and an unknown key is not found
    assert whoami(client, home.clinic["api_key"]) == 200 and whoami(client, home.prescriber["api_key"]) == 200
    unknown = client.delete("/v1/keys/00000000-0000-4000-8000-000000000000", headers=home.headers)
    assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/not-found"


def test_a_prescriber_rotates_its_own_key_and_its_clinic_manages_it(home: Tenant, client: httpx.Client) -> None:
    prescriber = f"/v1/prescribers/{home.prescriber['id']}"
    rx_key = home.prescriber["api_key"]
    # the prescriber issues itself a key; its clinic sees both
    issued = ok(client.post(f"{prescriber}/keys", json={}, headers=bearer(rx_key)), 201)
    assert issued["owner"] == f"prescriber:{home.prescriber['id']}" and issued["label"] is None
    assert issued["created_by"] == f"prescriber:{home.prescriber['id']}" and issued["api_key"].startswith("kact_rx_")
    listed = keys_of(client, prescriber, home.clinic["api_key"])
    assert [k["created_by"] for k in listed] == [f"clinic:{home.clinic['id']}", f"prescriber:{home.prescriber['id']}"]
    # a prescriber never sees its clinic's keys
    assert client.get(f"/v1/clinics/{home.clinic['id']}/keys", headers=bearer(rx_key)).status_code == 404
    # the clinic revokes the prescriber's first key; the new one goes on working
    assert client.delete(f"/v1/keys/{listed[0]['id']}", headers=home.headers).status_code == 204
    assert whoami(client, rx_key) == 401 and whoami(client, issued["api_key"]) == 200
    assert keys_of(client, prescriber, issued["api_key"])[0]["revoked_by"] == f"clinic:{home.clinic['id']}"


def test_a_clinic_that_revoked_its_last_key_gets_a_new_one_from_the_operator(
    home: Tenant, client: httpx.Client, live_server: LiveServer
) -> None:
    clinic = f"/v1/clinics/{home.clinic['id']}"
    (only,) = keys_of(client, clinic, home.clinic["api_key"])
    assert client.delete(f"/v1/keys/{only['id']}", headers=home.headers).status_code == 204  # locked out
    assert whoami(client, home.clinic["api_key"]) == 401
    operator = bearer(live_server.operator_token)
    issued = ok(client.post(f"{clinic}/keys", json={"label": "after lock-out"}, headers=operator), 201)
    assert issued["created_by"] == "operator:root" and whoami(client, issued["api_key"]) == 200


def test_keys_are_bounded_in_number_and_label(home: Tenant, client: httpx.Client) -> None:
    clinic = f"/v1/clinics/{home.clinic['id']}"
    too_long = client.post(f"{clinic}/keys", json={"label": "x" * 101}, headers=home.headers)
    assert too_long.status_code == 422 and too_long.json()["type"] == "/problems/invalid-input"
    for _ in range(MAX_ACTIVE_KEYS - 1):
        ok(client.post(f"{clinic}/keys", json={}, headers=home.headers), 201)
    refused = client.post(f"{clinic}/keys", json={}, headers=home.headers)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/too-many-keys"
    # revoking one makes room again
    last = keys_of(client, clinic, home.clinic["api_key"])[-1]
    assert client.delete(f"/v1/keys/{last['id']}", headers=home.headers).status_code == 204
    ok(client.post(f"{clinic}/keys", json={}, headers=home.headers), 201)


# Two API processes over one database -----------------------------------------------------------------------


@pytest.fixture
def second_process(live_server: LiveServer, tmp_path: Path) -> Iterator[str]:
    with api_process(live_server, tmp_path / "second.log") as base_url:
        yield base_url


def refused_within(client: httpx.Client, key: str, limit: float) -> float:
    """Seconds until `key` gets 401 from `client`'s server (polled), failing if it takes `limit` or more."""
    started = time.monotonic()
    while whoami(client, key) != 401:
        assert time.monotonic() - started < limit, f"still accepted after {limit} s"
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_key_revoked_in_one_process_is_refused_by_another_within_a_second(
    home: Tenant, client: httpx.Client, second_process: str
) -> None:
    clinic = f"/v1/clinics/{home.clinic['id']}"
    first = ok(client.post(f"{clinic}/keys", json={"label": "first"}, headers=home.headers), 201)
    second = ok(client.post(f"{clinic}/keys", json={"label": "second"}, headers=home.headers), 201)
    with httpx.Client(base_url=second_process, timeout=10) as other:
        # the other process has the keys in its cache (used there, repeatedly)
        for _ in range(3):
            assert whoami(other, first["api_key"]) == 200 and whoami(other, second["api_key"]) == 200
        # revoked through this process: the other refuses it within a second, and still takes the rest
        assert client.delete(f"/v1/keys/{first['id']}", headers=home.headers).status_code == 204
        elapsed = refused_within(other, first["api_key"], 1.0)
        assert elapsed < 1.0
        assert whoami(other, second["api_key"]) == 200 and whoami(other, home.clinic["api_key"]) == 200
        # and the other way round
        assert whoami(client, second["api_key"]) == 200
        assert other.delete(f"/v1/keys/{second['id']}", headers=home.headers).status_code == 204
        assert refused_within(client, second["api_key"], 1.0) < 1.0
        listed = {k["id"]: k for k in keys_of(other, clinic, home.clinic["api_key"])}
        assert listed[first["id"]]["revoked_at"] and listed[second["id"]]["revoked_at"]


def test_last_used_is_recorded_in_batches_not_per_request(
    home: Tenant, client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    clinic = f"/v1/clinics/{home.clinic['id']}"
    issued = ok(client.post(f"{clinic}/keys", json={}, headers=home.headers), 201)
    assert issued["last_used_at"] is None
    with api_process(live_server, tmp_path / "usage.log") as base_url:
        with httpx.Client(base_url=base_url, timeout=10) as other:
            for _ in range(20):
                assert whoami(other, issued["api_key"]) == 200
        # used twenty times, written not once yet (the batch is written once a minute, or at shutdown)
        listed = {k["id"]: k for k in keys_of(client, clinic, home.clinic["api_key"])}
        assert listed[issued["id"]]["last_used_at"] is None
    listed = {k["id"]: k for k in keys_of(client, clinic, home.clinic["api_key"])}
    assert listed[issued["id"]]["last_used_at"] is not None
