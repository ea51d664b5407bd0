"""The settings `kact up` runs with: server URLs, and secrets from the environment or data dir."""

from __future__ import annotations

import base64
import dataclasses
import secrets

from eventsourcing.cryptography import AESCipher

from scheduler.secretfile import private_dir, read_or_create
from scheduler.settings import Settings

OPERATOR_KEY_FILE = "operator.key"
CIPHER_KEY_FILE = "cipher.key"
AUDIT_KEY_FILE = "audit.key"  # signs the event chain's heads (`scheduler.chain`)


def resolve_runtime_settings(settings: Settings, *, database_url: str, nats_url: str) -> Settings:
    """`settings` with the given server URLs; each secret the environment did not set is
    generated once and kept in an owner-only file (0600) of the data dir (created 0700)."""
    data_dir = private_dir(settings.data_dir)
    operator_token = settings.operator_token or read_or_create(
        data_dir / OPERATOR_KEY_FILE, lambda: secrets.token_urlsafe(32)
    )
    # Losing this key makes every encrypted event unreadable: created once, never rotated here.
    cipher_key = settings.cipher_key or read_or_create(
        data_dir / CIPHER_KEY_FILE, lambda: AESCipher.create_key(32)
    )
    # Losing this key leaves the signed heads unverifiable (the chain itself still checks): never rotated here.
    audit_key = settings.audit_key or read_or_create(
        data_dir / AUDIT_KEY_FILE, lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
    return dataclasses.replace(
        settings,
        database_url=database_url,
        nats_url=nats_url,
        operator_token=operator_token,
        cipher_key=cipher_key,
        audit_key=audit_key,
    )
