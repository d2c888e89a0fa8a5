"""Settings: defaults for the embedded hub, and no default secrets in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.settings import DEFAULT_SECRET_KEY, Settings


def test_embedded_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.env == "development"
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith(
        "harmony.db"
    )
    assert (settings.broker_url, settings.api_port, settings.mllp_port) == ("memory://", 8000, 2575)
    assert settings.default_timezone == "UTC"
    assert settings.dev_token in settings.accepted_tokens()


def test_environment_variables_use_the_harmony_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARMONY_MLLP_PORT", "3575")
    monkeypatch.setenv("HARMONY_DEFAULT_TIMEZONE", "Europe/London")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.mllp_port == 3575 and settings.default_timezone == "Europe/London"


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown IANA timezone"):
        Settings(default_timezone="Mars/Olympus", _env_file=None)  # type: ignore[call-arg]


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(ValidationError, match="HARMONY_SECRET_KEY"):
        Settings(env="production", api_tokens=["t0k3n"], _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="HARMONY_API_TOKENS"):
        Settings(env="production", secret_key="s3cr3t", _env_file=None)  # type: ignore[call-arg]


def test_production_ignores_the_dev_token() -> None:
    settings = Settings(env="production", secret_key="s3cr3t", api_tokens=["t0k3n"], _env_file=None)  # type: ignore[call-arg]
    assert settings.secret_key != DEFAULT_SECRET_KEY
    assert settings.accepted_tokens() == frozenset({"t0k3n"})
