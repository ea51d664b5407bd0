"""The notifier's Prometheus metrics (prometheus-client), served on 127.0.0.1 when `KACT_NOTIFIER_METRICS_PORT` is
set (`kact up` sets it). Labels are bounded: outcomes and states only, never a recipient, a URL or an event."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True)
class NotifierMetrics:
    inbox_pending: Gauge
    messages: Counter
    dead_letters: Counter
    webhook_deliveries: Counter
    webhook_seconds: Histogram


@functools.cache
def metrics() -> NotifierMetrics:
    """Created on first use, by the notifier only: the scheduler's API imports `notifier.webhooks` (through
    `notifier.admin`) and must not expose these (as zeros, or as files of its workers' multiprocess mode)."""
    return NotifierMetrics(
        inbox_pending=Gauge(
            "kact_notifier_inbox_pending",
            "Messages waiting on the notifier's JetStream consumer after its last fetch (the consumer's "
            "num_pending; 0 once a fetch finds nothing)"),
        messages=Counter("kact_notifier_messages", "Messages the notifier consumed, by outcome (processed, "
                         "duplicate, retried, dead_letter)", ["outcome"]),
        dead_letters=Counter("kact_notifier_dead_letters", "Messages the notifier recorded as dead letters"),
        webhook_deliveries=Counter(
            "kact_webhook_deliveries",
            "Webhook delivery attempts by the state they left their delivery in: delivered, retrying (another "
            "attempt is scheduled) or failed (out of attempts: redrive it)", ["state"]),
        webhook_seconds=Histogram(
            "kact_webhook_attempt_seconds", "Time of one webhook attempt (connect to status line)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)),
    )
