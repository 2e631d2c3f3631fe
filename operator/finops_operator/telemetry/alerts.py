"""Deliver alerts to a webhook in Alertmanager's webhook JSON format (version 4), so any receiver
that understands Alertmanager (chat bridges, incident tools) can take them unchanged."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from finops_operator.telemetry.outbound import post_json


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    recipient_group: str
    namespace: str
    policy: str
    message: str
    workload: str | None = None


def alertmanager_payload(alerts: Sequence[Alert], now: datetime, external_url: str = "") -> dict[str, object]:
    """The body Alertmanager itself would POST for these alerts (all firing)."""
    items = []
    for alert in alerts:
        labels: dict[str, str] = {
            "alertname": alert.name,
            "severity": alert.severity,
            "recipient_group": alert.recipient_group,
            "namespace": alert.namespace,
            "finopspolicy": alert.policy,
        }
        if alert.workload:
            labels["deployment"] = alert.workload
        items.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": alert.message},
                "startsAt": now.isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": external_url,
                "fingerprint": "",
            }
        )
    common: Mapping[str, str] = items[0]["labels"] if len(items) == 1 else {}  # type: ignore[assignment]
    return {
        "version": "4",
        "groupKey": f"finops/{alerts[0].namespace}/{alerts[0].policy}" if alerts else "finops",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "finops-operator",
        "groupLabels": {"finopspolicy": alerts[0].policy} if alerts else {},
        "commonLabels": dict(common),
        "commonAnnotations": {},
        "externalURL": external_url,
        "alerts": items,
    }


def post_alerts(
    url: str, alerts: Sequence[Alert], now: datetime, timeout: float = 10, *, allow_private: bool = False
) -> None:
    """POST the alerts through the outbound guard (https, public addresses only unless
    ``allow_private``, no redirects, bounded time and size); raises OSError when the URL is refused,
    the receiver cannot be reached or it answers an error."""
    if not alerts:
        return
    post_json(
        url,
        json.dumps(alertmanager_payload(alerts, now)).encode(),
        allow_private=allow_private,
        timeout=timeout,
    )
