from __future__ import annotations

import pytest

from finops_operator.settings import SettingsError, load_settings


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_SAMPLE_INTERVAL_SECONDS", "30")
    assert load_settings().sample_interval_seconds == 30
    assert load_settings(sample_interval_seconds=5).sample_interval_seconds == 5


def test_errors_name_the_setting_and_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_METRICS_PORT", "99999")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "metrics_port (FINOPS_METRICS_PORT): Input should be less than or equal to 65535" in str(
        error.value
    )


def test_webhook_service_must_name_a_namespace() -> None:
    with pytest.raises(SettingsError, match=r"name\.namespace"):
        load_settings(webhook_enabled=True, webhook_service="finops-operator")


def test_a_shared_certificate_secret_needs_the_operator_namespace() -> None:
    with pytest.raises(SettingsError, match="webhook_cert_secret needs operator_namespace"):
        load_settings(webhook_cert_secret="finops-webhook-tls")
    settings = load_settings(
        webhook_cert_secret="finops-webhook-tls", webhook_service="finops-operator.finops-system"
    )
    assert settings.own_namespace == "finops-system"


def test_exempt_namespaces_come_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_WEBHOOK_EXEMPT_NAMESPACES", '["sandbox", "batch-legacy"]')
    assert load_settings().webhook_exempt_namespaces == ["sandbox", "batch-legacy"]
