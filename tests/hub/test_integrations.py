"""The integrations registry: secrets sealed at rest and never shown, health, validation."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

from hub.integrations import IntegrationError, IntegrationRegistry, UnknownIntegration
from hub.message_store import utcnow
from hub.settings import Settings
from hub.tables import integrations

SECRET = "client-secret-do-not-leak"


def _registry(engine: Engine, key: str = "k" * 32) -> IntegrationRegistry:
    url = engine.url.render_as_string(hide_password=False)
    return IntegrationRegistry(engine, Settings(database_url=url, secret_key=key))


def test_secrets_are_sealed_at_rest_and_absent_from_views(engine: Engine) -> None:
    registry = _registry(engine)
    view = registry.add(
        "athena-east",
        "athena",
        "http://athena.example/",
        credentials={"client_id": "abc", "client_secret": SECRET},
        options={"practiceid": "195900"},
        webhook_secret="hook-secret",
    )
    assert view.has_credentials and view.has_webhook_secret
    assert view.base_url == "http://athena.example"
    assert SECRET not in repr(view.as_json()) and "hook-secret" not in repr(view.as_json())
    with engine.connect() as conn:
        row = conn.execute(select(integrations)).one()
    assert SECRET.encode() not in row.credentials and b"hook-secret" not in row.webhook_secret
    config = registry.config("athena-east")
    assert config.credentials["client_secret"] == SECRET
    assert SECRET not in repr(config)
    assert registry.webhook_secret("athena-east") == "hook-secret"


def test_a_changed_secret_key_is_reported_not_garbled(engine: Engine) -> None:
    _registry(engine).add("epic-a", "epic", "http://e", credentials={"client_id": "x"})
    with pytest.raises(ValueError, match="HARMONY_SECRET_KEY changed"):
        _registry(engine, key="another-key").config("epic-a")


def test_validation_and_unknown_names(engine: Engine) -> None:
    registry = _registry(engine)
    with pytest.raises(IntegrationError, match="lowercase"):
        registry.add("Bad Name", "epic", "http://e")
    with pytest.raises(IntegrationError, match="not one of"):
        registry.add("x", "cerner", "http://e")
    registry.add("x", "epic", "http://e")
    with pytest.raises(IntegrationError, match="already exists"):
        registry.add("x", "epic", "http://e")
    with pytest.raises(UnknownIntegration):
        registry.get("nope")
    with pytest.raises(UnknownIntegration):
        registry.remove("nope")
    with pytest.raises(IntegrationError, match="cannot change"):
        registry.update("x", source_type="athena")


def test_update_list_remove_and_default_interval(engine: Engine) -> None:
    registry = _registry(engine)
    registry.add("g1", "google", "http://g")
    assert registry.get("g1").sync_interval_seconds == 900
    changed = registry.update("g1", sync_interval_seconds=60, options={"days_ahead": 7})
    assert (changed.sync_interval_seconds, changed.options) == (60, {"days_ahead": 7})
    registry.add("a1", "athena", "http://a")
    assert [v.name for v in registry.list()] == ["a1", "g1"]
    registry.remove("a1")
    assert [v.name for v in registry.list()] == ["g1"]


def test_health_follows_sync_outcomes(engine: Engine) -> None:
    registry = _registry(engine)
    registry.add("e1", "epic", "http://e")
    assert registry.get("e1").health == "never-synced"
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(update(integrations).values(last_success_at=now, consecutive_failures=2))
    assert registry.get("e1").health == "failing"
    with engine.begin() as conn:
        conn.execute(
            update(integrations).values(
                consecutive_failures=5, next_sync_at=now.replace(year=now.year + 1)
            )
        )
    assert registry.get("e1").health == "circuit-open"
    assert registry.update("e1", enabled=False).health == "disabled"
    assert registry.update("e1", enabled=True).health == "ok"
