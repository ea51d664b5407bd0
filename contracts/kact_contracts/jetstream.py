"""The contract's stream and consumer settings applied to a JetStream server through nats-py (idempotent)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import NotFoundError

from kact_contracts.bus import ConsumerSettings, StreamSettings


def stream_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=settings.name,
        subjects=settings.subjects,
        storage=StorageType(settings.storage),
        retention=RetentionPolicy(settings.retention),
        duplicate_window=settings.duplicate_window_seconds,
        max_age=settings.max_age_seconds,
        num_replicas=settings.num_replicas,
        max_msg_size=settings.max_msg_size,
    )


def consumer_config(settings: ConsumerSettings, filter_subject: str) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=settings.durable_name,
        deliver_policy=DeliverPolicy(settings.deliver_policy),
        ack_policy=AckPolicy(settings.ack_policy),
        ack_wait=settings.ack_wait_seconds,
        max_deliver=settings.max_deliver,
        backoff=list(settings.backoff_seconds),
        max_ack_pending=settings.max_ack_pending,
        filter_subject=filter_subject,
    )


async def ensure_stream(js: JetStreamContext, settings: StreamSettings) -> StreamInfo:
    """Create the stream, or bring an existing one to these settings."""
    config = stream_config(settings)
    try:
        await js.stream_info(settings.name)
    except NotFoundError:
        return await js.add_stream(config)
    return await js.update_stream(config)


async def ensure_consumer(
    js: JetStreamContext, stream: StreamSettings, settings: ConsumerSettings
) -> ConsumerInfo:
    """Create the durable consumer, or update it (adding with changed settings updates a durable)."""
    return await js.add_consumer(stream.name, consumer_config(settings, stream.subjects[0]))
