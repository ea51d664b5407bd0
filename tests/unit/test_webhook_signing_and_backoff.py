"""Webhook retries back off exponentially with full jitter under a cap; signatures follow Standard Webhooks;
signing secrets are sealed with AES-GCM."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import statistics
import time
from uuid import uuid4

import pytest
from cryptography.exceptions import InvalidTag
from eventsourcing.cryptography import AESCipher
from hypothesis import given
from hypothesis import strategies as st
from notifier import webhooks
from notifier.webhooks import SecretBox, backoff, new_secret, sign
from standardwebhooks import Webhook, WebhookVerificationError


class Ceiling(random.Random):
    """Jitter that always picks the upper bound, to see the exponential envelope itself."""

    def uniform(self, a: float, b: float) -> float:
        return b


@given(attempt=st.integers(1, 100_000), base=st.floats(0, 100), cap=st.floats(0, 100_000))
def test_a_delay_is_never_negative_and_never_above_the_cap_or_the_exponential_envelope(
    attempt: int, base: float, cap: float
) -> None:
    delay = backoff(attempt, base, cap, random.Random(attempt))
    assert 0 <= delay <= min(cap, base * 2 ** min(attempt - 1, 64))


def test_the_envelope_doubles_from_the_base_until_the_cap() -> None:
    assert [backoff(n, 1.0, 300.0, Ceiling()) for n in range(1, 12)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff(10_000, 1.0, 300.0, Ceiling()) == 300  # no overflow far past the cap


def test_delays_are_jittered_over_the_whole_range() -> None:
    rng = random.Random(7)
    delays = [backoff(4, 1.0, 300.0, rng) for _ in range(2000)]  # envelope: 8 s
    assert min(delays) < 0.5 and max(delays) > 7.5
    assert 3.6 < statistics.mean(delays) < 4.4  # uniform on [0, 8]
    assert len(set(delays)) == len(delays)


def test_the_signature_is_hmac_sha256_over_id_timestamp_and_body_with_the_decoded_secret() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[len("whsec_"):])) == 32
    body, msg_id, timestamp = b'{"position":1,"notice":"update"}', "msg-1", int(time.time())
    expected = hmac.new(base64.b64decode(secret[len("whsec_"):]), f"{msg_id}.{timestamp}.".encode() + body,
                        hashlib.sha256).digest()
    assert sign(secret, msg_id, timestamp, body) == "v1," + base64.b64encode(expected).decode()
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(secret, msg_id, timestamp, body)}
    assert Webhook(secret).verify(body, headers) == {"position": 1, "notice": "update"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"1", b"2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_a_sealed_secret_is_not_readable_and_opens_only_for_its_own_subscription() -> None:
    box, secret, subscription = SecretBox(AESCipher.create_key(32)), new_secret(), uuid4()
    sealed = box.seal(secret, subscription)
    assert secret.encode() not in sealed and secret[6:].encode() not in sealed
    assert box.open(sealed, subscription) == secret
    with pytest.raises(InvalidTag):
        box.open(sealed, uuid4())
    with pytest.raises(InvalidTag):
        SecretBox(AESCipher.create_key(32)).open(sealed, subscription)
    with pytest.raises(ValueError):
        SecretBox(base64.b64encode(b"short").decode())


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.8", "172.16.4.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "fc00::1", "fe80::1%eth0", "::"])
def test_loopback_private_link_local_and_reserved_addresses_are_not_public(address: str) -> None:
    assert webhooks.not_public(address)


@pytest.mark.parametrize("host", ["8.8.8.8", "2001:4860:4860::8888", "clinic.example"])
def test_public_addresses_and_host_names_pass_the_literal_check(host: str) -> None:
    assert not webhooks.not_public(host)  # a host name is checked against what it resolves to, at delivery
