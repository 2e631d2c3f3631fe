"""Events name the operator, not the framework: `kubectl describe` shows `From finops-operator`."""

from __future__ import annotations

import socket

import kopf

from finops_operator.main import EVENT_SOURCE, configure_kopf


def test_events_are_reported_by_the_operator_and_its_instance() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    assert settings.posting.reporting_component == EVENT_SOURCE == "finops-operator"
    assert settings.posting.reporting_instance == socket.gethostname()
