"""The unit's Prometheus metrics, kept by prometheus_client and rendered in the text exposition format.

A thin facade over prometheus_client: each ``Registry`` owns its own ``CollectorRegistry`` (one per
app, so tests that build several apps never clash), and the units keep calling ``inc``, ``set`` and
``observe`` with label keywords, as they did with the hand-written registry this replaces. The
metric names and labels are unchanged.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE  # noqa: F401

try:  # prometheus_client >= 0.17: no ``*_created`` series, so the output stays what it was
    from prometheus_client import disable_created_metrics

    disable_created_metrics()
except ImportError:  # pragma: no cover - older clients only add the extra series
    pass

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Metric:
    """What the units use of a metric: labels as keywords, and the current value for tests."""

    def __init__(self, metric: _Counter | _Gauge | _Histogram, registry: CollectorRegistry, sample: str,
                 labelnames: tuple[str, ...]) -> None:
        self._metric, self._registry, self._sample, self.labelnames = metric, registry, sample, labelnames

    def _child(self, labels: dict[str, str]) -> _Counter | _Gauge | _Histogram:
        return self._metric.labels(**{n: str(labels[n]) for n in self.labelnames}) if self.labelnames else self._metric

    def value(self, **labels: str) -> float:
        found = self._registry.get_sample_value(self._sample, {n: str(labels[n]) for n in self.labelnames})
        return 0.0 if found is None else float(found)


class Counter(_Metric):
    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._child(labels).inc(amount)  # type: ignore[union-attr]


class Gauge(_Metric):
    """A value that goes up and down (queue depth, requests in flight)."""

    def set(self, value: float, **labels: str) -> None:
        self._child(labels).set(value)  # type: ignore[union-attr]


class Histogram(_Metric):
    def observe(self, value: float, **labels: str) -> None:
        self._child(labels).observe(value)  # type: ignore[union-attr]


class Registry:
    def __init__(self, unit: str, version: str) -> None:
        self.collectors = CollectorRegistry(auto_describe=True)
        info = self.gauge("mlstack_unit_info", "The unit this process runs.", ("unit", "version"))
        info.set(1, unit=unit, version=version)
        self.requests = self.counter("mlstack_http_requests_total", "HTTP requests by route, method and status.",
                                     ("route", "method", "status"))
        self.latency = self.histogram("mlstack_http_request_duration_seconds",
                                      "HTTP request latency by route, method and status.",
                                      ("route", "method", "status"))

    def counter(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> Counter:
        metric = _Counter(name, help_text, labelnames, registry=self.collectors)
        return Counter(metric, self.collectors, name if name.endswith("_total") else f"{name}_total", labelnames)

    def gauge(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> Gauge:
        return Gauge(_Gauge(name, help_text, labelnames, registry=self.collectors), self.collectors, name, labelnames)

    def histogram(self, name: str, help_text: str, labelnames: tuple[str, ...] = (),
                  buckets: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram:
        metric = _Histogram(name, help_text, labelnames, buckets=buckets, registry=self.collectors)
        return Histogram(metric, self.collectors, f"{name}_count", labelnames)

    def render(self) -> str:
        return generate_latest(self.collectors).decode("utf-8")


__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Counter", "Gauge", "Histogram", "Registry"]
