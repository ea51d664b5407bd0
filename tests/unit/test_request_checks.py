"""The body guard's checks and the idempotency request identity, without a server."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scheduler.http.body_guard import _depth_exceeds, _invalid_json, _is_json
from scheduler.http.schemas import ClinicCreate, SessionCreate, known_time_zone
from scheduler.idempotency import request_hash

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


def nested(depth: int) -> object:
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [0, 1, 31, 32])
def test_nesting_up_to_the_limit_passes(depth: int) -> None:
    assert not _depth_exceeds(nested(depth), 32)
    assert isinstance(_invalid_json(json.dumps(nested(depth)).encode(), 32), tuple)


@pytest.mark.parametrize("depth", [33, 500, 5000])
def test_nesting_past_the_limit_is_refused(depth: int) -> None:
    assert _depth_exceeds(nested(depth), 32)
    body = ("[" * depth + "]" * depth).encode()
    assert _invalid_json(body, 32) == "the JSON body is nested more than 32 levels deep"


def test_brackets_inside_strings_are_not_nesting() -> None:
    assert isinstance(_invalid_json(json.dumps({"note": "[" * 100}).encode(), 32), tuple)


@pytest.mark.parametrize("body", [b'{"a": "x\\u0000"}', b'{"a\\u0000": 1}', b'["\\\\\\u0000"]'])
def test_a_nul_character_is_refused(body: bytes) -> None:
    assert _invalid_json(body, 32) == "strings must not contain the NUL character (\\u0000)"


def test_an_escaped_backslash_before_u0000_is_text_not_nul() -> None:
    assert _invalid_json(b'{"a": "C:\\\\u0000"}', 32) == ({"a": "C:\\u0000"},)


@pytest.mark.parametrize("body", [b"{", b'{"a": 1,}', b"\xff", b'"\\ud800"', b"NaN"])
def test_malformed_json_is_refused_with_a_reason(body: bytes) -> None:
    assert isinstance(_invalid_json(body, 32), str)


@pytest.mark.parametrize(("content_type", "is_json"), [
    (b"application/json", True), (b"application/json; charset=utf-8", True), (b"Application/JSON", True),
    (b"application/merge-patch+json", True), (b"text/plain", False), (b"", False),
    (b"application/x-www-form-urlencoded", False), (b"application/jsonp", False),
])
def test_json_content_types(content_type: bytes, is_json: bool) -> None:
    assert _is_json(content_type) is is_json


@given(json_values, st.randoms())
def test_the_request_identity_ignores_key_order_and_whitespace(value: object, rng: random.Random) -> None:
    def shuffled(v: object) -> object:
        if isinstance(v, dict):
            items = list(v.items())
            rng.shuffle(items)
            return {k: shuffled(x) for k, x in items}
        if isinstance(v, list):
            return [shuffled(x) for x in v]
        return v

    spaced = json.dumps(shuffled(value), indent=rng.choice([None, 1, 4]))
    assert request_hash("POST", "/v1/x", msgspec.json.decode(spaced)) == request_hash("POST", "/v1/x", value)


def test_the_request_identity_tells_bodies_paths_and_no_body_apart() -> None:
    base = request_hash("POST", "/v1/x", {"a": 1})
    assert base != request_hash("POST", "/v1/x", {"a": 2})
    assert base != request_hash("POST", "/v1/y", {"a": 1})
    assert request_hash("POST", "/v1/x", None) != request_hash("POST", "/v1/x", {})


@pytest.mark.parametrize(("name", "known"), [
    ("Europe/Berlin", True), ("UTC", True), ("America/Argentina/Buenos_Aires", True),
    ("Mars/Olympus_Mons", False), ("../../etc/passwd", False), ("", False),
])
def test_time_zones_are_iana_names(name: str, known: bool) -> None:
    assert known_time_zone(name) is known


def test_instants_lie_in_the_years_2000_to_2099() -> None:
    def session(at: str) -> dict[str, str]:
        return {"kind": "assessment", "starts_at": at, "ends_at": at}

    assert msgspec.convert(session("2099-12-31T23:59:59Z"), SessionCreate).starts_at == datetime(
        2099, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    for at in ("2100-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "9999-12-31T20:00:00-05:00", "0001-01-01T00:30:00+01:00"):
        with pytest.raises(msgspec.ValidationError, match="years 2000 to 2099"):
            msgspec.convert(session(at), SessionCreate)


def test_an_unknown_time_zone_is_refused_by_name() -> None:
    with pytest.raises(msgspec.ValidationError, match="Mars/Olympus_Mons"):
        msgspec.convert({"name": "A", "timezone": "Mars/Olympus_Mons"}, ClinicCreate)
