"""A small Prometheus registry: counters, gauges and histograms rendered in the text exposition format."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = list(labels) + list(extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, labelnames
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple((n, str(labels[n])) for n in self.labelnames)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple((n, str(labels[n])) for n in self.labelnames), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            for key, value in sorted(self._values.items()):
                lines.append(f"{self.name}{_labels(key)} {_num(value)}")
        return lines


class Gauge:
    """A value that goes up and down (queue depth, requests in flight)."""

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, labelnames
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def set(self, value: float, **labels: str) -> None:
        key = tuple((n, str(labels[n])) for n in self.labelnames)
        with self._lock:
            self._values[key] = value

    def value(self, **labels: str) -> float:
        return self._values.get(tuple((n, str(labels[n])) for n in self.labelnames), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        with self._lock:
            for key, value in sorted(self._values.items()):
                lines.append(f"{self.name}{_labels(key)} {_num(value)}")
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.labelnames = name, help_text, labelnames
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, **labels: str) -> None:
        key = tuple((n, str(labels[n])) for n in self.labelnames)
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * len(self.buckets), [0.0]))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            total[0] += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            for key, (counts, total) in sorted(self._series.items()):
                for bound, count in zip(self.buckets, counts, strict=True):
                    lines.append(f"{self.name}_bucket{_labels(key, [('le', _num(bound))])} {count}")
                lines.append(f"{self.name}_sum{_labels(key)} {_num(total[0])}")
                lines.append(f"{self.name}_count{_labels(key)} {counts[-1]}")
        return lines


class Registry:
    def __init__(self, unit: str, version: str) -> None:
        self._info = ["# HELP mlstack_unit_info The unit this process runs.", "# TYPE mlstack_unit_info gauge",
                      f'mlstack_unit_info{{unit="{_escape(unit)}",version="{_escape(version)}"}} 1']
        self._metrics: list[Counter | Gauge | Histogram] = []
        self.requests = self.counter("mlstack_http_requests_total", "HTTP requests by route, method and status.",
                                     ("route", "method", "status"))
        self.latency = self.histogram("mlstack_http_request_duration_seconds",
                                      "HTTP request latency by route, method and status.",
                                      ("route", "method", "status"))

    def counter(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> Counter:
        metric = Counter(name, help_text, labelnames)
        self._metrics.append(metric)
        return metric

    def gauge(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> Gauge:
        metric = Gauge(name, help_text, labelnames)
        self._metrics.append(metric)
        return metric

    def histogram(self, name: str, help_text: str, labelnames: tuple[str, ...] = (),
                  buckets: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram:
        metric = Histogram(name, help_text, labelnames, buckets)
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines = list(self._info)
        for metric in self._metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
