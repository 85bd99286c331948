"""Prometheus metrics of the sync, read from the database at scrape time (prometheus-client).

Every process serves the same figures, so any web worker can answer a scrape. A registry of
its own holds only these (no per-process metrics that would differ between workers).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from sync import monitoring


class SyncCollector(Collector):
    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: collect() reads the database

    def collect(self) -> Iterator[Metric]:
        entities = monitoring.entity_counts()
        last = monitoring.last_success_at()

        pending = GaugeMetricFamily(
            "news_sync_pending_events",
            "Change events not yet delivered to the target, by table and type.",
            labels=["table", "type"],
        )
        for (table, event_type), count in sorted(monitoring.pending_by_table().items()):
            pending.add_metric([table, event_type], count)
        yield pending

        yield GaugeMetricFamily(
            "news_sync_oldest_pending_event_age_seconds",
            "Age of the oldest change event waiting for delivery (parked entities left out); "
            "0 when none waits.",
            value=monitoring.age_of(monitoring.oldest_waiting_logged_at()),
        )

        runs = CounterMetricFamily(
            "news_sync_runs", "sync_changes runs by mode and status.", labels=["mode", "status"]
        )
        for (mode, status), count in sorted(monitoring.run_counts().items()):
            runs.add_metric([mode, status], count)
        yield runs

        calls = CounterMetricFamily(
            "news_sync_calls",
            "Write calls to the target by method and outcome (succeeded: the target holds the "
            "entity's state; failed: sent, and the entity stays pending).",
            labels=["method", "outcome"],
        )
        for (method, outcome), count in monitoring.call_counts().items():
            calls.add_metric([method, outcome], count)
        yield calls

        yield GaugeMetricFamily(
            "news_sync_failing_entities",
            "Entities whose last call failed, still retried by the next runs.",
            value=entities["failing"],
        )
        yield GaugeMetricFamily(
            "news_sync_parked_entities",
            "Entities parked after SYNC_MAX_ATTEMPTS failed runs: skipped until they change or "
            "an operator retries them.",
            value=entities["parked"],
        )
        yield GaugeMetricFamily(
            "news_sync_last_success_timestamp_seconds",
            "End of the last run that delivered everything it had to (Unix time; 0: none yet).",
            value=last.timestamp() if last else 0.0,
        )

        rate = monitoring.target_rate()
        yield GaugeMetricFamily(
            "news_sync_target_rate",
            "Calls a second the sync paces itself to, as the target's answers allow (0: as fast "
            "as allowed, no slowdown seen, or no run yet).",
            value=rate or 0.0,
        )

        verification = monitoring.last_verification()
        differences = GaugeMetricFamily(
            "news_sync_verify_differences",
            "Records the last sync_changes --verify found missing on the target, extra there, "
            "or different, by kind (none: no verification yet).",
            labels=["kind", "what"],
        )
        for resource, counts in sorted((verification.counts if verification else {}).items()):
            for what, count in sorted(counts.items()):
                differences.add_metric([resource, what], count)
        yield differences
        yield GaugeMetricFamily(
            "news_sync_verify_timestamp_seconds",
            "End of the last sync_changes --verify (Unix time; 0: none yet).",
            value=verification.finished_at.timestamp()
            if verification and verification.finished_at
            else 0.0,
        )

        lag = monitoring.lag_histogram()
        histogram = HistogramMetricFamily(
            "news_sync_lag_seconds",
            "Commit-to-delivered lag of the synced change events still kept (prune_events "
            "removes old ones).",
        )
        buckets = [(floatToGoString(bound), count) for bound, count in lag.buckets]
        histogram.add_metric(
            [], buckets=[*buckets, ("+Inf", lag.count)], sum_value=lag.total_seconds
        )
        yield histogram


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(SyncCollector())


def exposition(accept: str = "") -> tuple[bytes, str]:
    """The metrics and their content type, in the format the scraper's Accept header asks for
    (Prometheus' text format unless it asks for OpenMetrics)."""
    encode, content_type = choose_encoder(accept)
    return encode(REGISTRY), content_type
