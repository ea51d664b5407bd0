"""The scheduler's Prometheus metrics (prometheus-client): requests and command outcomes of the API, group-commit
batches, the relay and the deadline watcher.

Every label has a bounded set of values: route templates, methods, status codes, operation ids, problem types,
invariants, outcomes. Never an id, a key, a clinic, a partner reference or anything of the clinical record.

With several API workers (`KACT_WORKERS` > 1) `kact up` sets PROMETHEUS_MULTIPROC_DIR before the workers start:
their counters and histograms live in files there, and any worker's `/metrics` sums them (`registry()`). The
metrics here are counters and histograms only (no gauge needs a multiprocess mode); the jobs process's gauges are
collected when scraped (`RelayLagCollector`), and the jobs process never runs in multiprocess mode."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

# Milliseconds to seconds: the API answers most commands in a few ms and its p99 is tens of ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "kact_http_requests", "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "kact_http_request_duration_seconds", "Time from a request's arrival to its last body byte sent",
    ["route", "method", "status"], buckets=LATENCY_BUCKETS)
COMMANDS = Counter(
    "kact_commands",
    "Commands (every POST, PUT and DELETE of the API) by operation id and outcome (accepted: 2xx; refused: 4xx; "
    "failed: 5xx), with the problem type of a refusal or failure",
    ["command", "outcome", "problem"])
RULE_VIOLATIONS = Counter(
    "kact_rule_violations", "Violations a refused command named, by operation id and invariant (I1-I11 or rule)",
    ["command", "invariant"])
GROUP_COMMIT_BATCH = Histogram(
    "kact_group_commit_batch_size", "Commands saved together in one transaction by the group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64))
GROUP_COMMIT_SECONDS = Histogram(
    "kact_group_commit_seconds", "Time of one group-commit transaction (the insert of a batch)",
    buckets=LATENCY_BUCKETS)
RELAY_PUBLISHED = Counter("kact_relay_published", "Events the relay published to JetStream (acked)")
RELAY_DEAD_LETTERED = Counter("kact_relay_dead_lettered", "Events the relay recorded as dead letters")
DEADLINE_RUNS = Counter("kact_deadline_watcher_runs", "Checks of the deadline watcher, by outcome", ["outcome"])
DEADLINE_SECONDS = Histogram("kact_deadline_watcher_run_seconds", "Time of one check of the deadline watcher",
                             buckets=LATENCY_BUCKETS)
WINDOWS_MISSED = Counter("kact_integration_windows_missed",
                         "Integration windows the deadline watcher recorded missed (I4)")
HOLDS_EXPIRED = Counter("kact_holds_expired", "Holds the deadline watcher recorded expired")


def registry() -> CollectorRegistry:
    """What `/metrics` exposes: this process's metrics, or every worker's under multiprocess mode."""
    directory = os.environ.get(MULTIPROC_DIR)
    if not directory:
        return REGISTRY
    summed = CollectorRegistry()
    MultiProcessCollector(summed, path=directory)
    return summed


class RelayLagCollector(Collector):
    """The relay's lag when scraped, as `/health/delivery` reports it: how many stored events are not yet relayed
    and for how long the oldest of them has waited; and how many dead letters the relay recorded in all."""

    def __init__(self, read: Callable[[], tuple[int, int, float | None, int]]) -> None:
        self._read = read  # -> (position, head, oldest waiting seconds, dead letters)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            position, head, waiting, dead = self._read()
        except Exception:  # noqa: BLE001 - the database away: no values rather than a failed scrape
            up = GaugeMetricFamily("kact_relay_lag_up", "1 when the relay's lag could be read from PostgreSQL")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("kact_relay_lag_up", "1 when the relay's lag could be read from PostgreSQL")
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("kact_relay_position", "The last stored event the relay dealt with", value=position)
        yield GaugeMetricFamily("kact_relay_head", "The last stored event (notification id)", value=head)
        yield GaugeMetricFamily("kact_relay_behind", "Stored events not yet relayed (notification ids)",
                                value=head - position)
        yield GaugeMetricFamily("kact_relay_oldest_waiting_seconds",
                                "Age of the oldest stored event not yet relayed (0: none waiting)",
                                value=waiting or 0.0)
        yield GaugeMetricFamily("kact_relay_dead_letters", "Dead letters the relay recorded (in the database)",
                                value=dead)
