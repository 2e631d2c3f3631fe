"""A minimal Prometheus HTTP API client (instant and range queries)."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


class PrometheusError(RuntimeError):
    """The query failed; the message says whether Prometheus was unreachable or refused it."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


def _get(base_url: str, path: str, params: Mapping[str, str], timeout: float) -> object:
    url = f"{base_url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        # Prometheus answers a bad query with 400/422 and a JSON body naming the problem.
        with error:
            try:
                body = json.loads(error.read())
            except (OSError, ValueError):
                raise PrometheusError(f"Prometheus at {base_url} answered HTTP {error.code}") from None
    except OSError as error:
        raise PrometheusError(f"Prometheus at {base_url} unreachable: {error}") from None
    except ValueError as error:
        raise PrometheusError(f"Prometheus at {base_url} answered with invalid JSON: {error}") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        detail = body.get("error", body) if isinstance(body, dict) else body
        raise PrometheusError(f"Prometheus at {base_url} refused the query: {detail}")
    return body.get("data")


def query(base_url: str, promql: str, timeout: float = 10) -> list[Sample]:
    """Evaluate an instant vector query; NaN samples are dropped (they carry no evidence)."""
    data = _get(base_url, "/api/v1/query", {"query": promql}, timeout)
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise PrometheusError(f"expected an instant vector from {promql!r}")
    samples = []
    for item in data.get("result", []):
        value = float(item["value"][1])
        if not math.isnan(value):
            samples.append(Sample(labels=item.get("metric", {}), value=value))
    return samples


def query_range(
    base_url: str, promql: str, *, start: datetime, end: datetime, step_seconds: float, timeout: float = 30
) -> list[tuple[Mapping[str, str], list[tuple[float, float]]]]:
    """Evaluate a range query: for each series, its labels and (unix time, value) points."""
    params = {
        "query": promql,
        "start": f"{start.timestamp():.3f}",
        "end": f"{end.timestamp():.3f}",
        "step": f"{step_seconds:g}",
    }
    data = _get(base_url, "/api/v1/query_range", params, timeout)
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise PrometheusError(f"expected a range vector from {promql!r}")
    return [
        (item.get("metric", {}), [(float(t), float(v)) for t, v in item.get("values", [])])
        for item in data.get("result", [])
    ]
