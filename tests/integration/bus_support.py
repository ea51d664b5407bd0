"""Reading what reached a JetStream stream, and checking it against the checked-in contracts."""

from __future__ import annotations

import asyncio
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import nats
from kact_contracts.bus import StreamSettings
from kact_contracts.envelope import CloudEvent, decode

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


@cache
def validator(event_type: str) -> jsonschema.protocols.Validator:
    schema = json.loads((CONTRACTS / "schemas" / f"{event_type}.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_message(subject: str, headers: dict[str, str], payload: bytes, stream: StreamSettings) -> CloudEvent:
    """The message validates against its event's JSON Schema and model, and its subject and id agree."""
    document = json.loads(payload)
    validator(document["type"]).validate(document)
    message = decode(payload)
    event = message.decode_data()
    assert subject == f"{stream.prefix}.course.{message.courseid}.{event.NAME}.v{event.VERSION}"
    assert headers.get("Nats-Msg-Id") == message.id
    return message


async def read_stream(nats_url: str, stream: StreamSettings, expected: int, timeout: float = 90.0) -> list[Any]:
    """Every message in the stream, in stream order, once at least `expected` are there (or the timeout)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = await js.stream_info(stream.name)
                if info.state.messages >= expected or time.monotonic() > deadline:
                    break
            except nats.js.errors.NotFoundError:
                if time.monotonic() > deadline:
                    return []
            await asyncio.sleep(0.1)
        subscription = await js.pull_subscribe(stream.subjects[0], stream=stream.name)
        messages: list[Any] = []
        while len(messages) < info.state.messages:
            try:
                batch = await subscription.fetch(500, timeout=2)
            except nats.errors.TimeoutError:
                break
            for message in batch:
                await message.ack()
            messages.extend(batch)
        await subscription.unsubscribe()
        return messages
    finally:
        await nc.close()


async def delete_stream(nats_url: str, name: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().delete_stream(name)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()
