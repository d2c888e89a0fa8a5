"""One Settings object for every process; read from HARMONY_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.message_store import RetryPolicy

DEFAULT_DEV_TOKEN = "harmony-dev-token"
DEFAULT_SECRET_KEY = "harmony-insecure-development-secret"


class Settings(BaseSettings):
    """Everything configurable lives here so that one object can be injected everywhere."""

    model_config = SettingsConfigDict(env_prefix="HARMONY_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = Field(default_factory=lambda: f"sqlite:///{Path.cwd() / 'harmony.db'}")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    broker_url: str = "memory://"
    broker_prefix: str = "harmony"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    mllp_max_message_bytes: int = 1_048_576
    mllp_idle_timeout_seconds: float = 300.0
    mllp_tls_cert: Path | None = None
    mllp_tls_key: Path | None = None
    mllp_tls_client_ca: Path | None = None
    default_timezone: str = "UTC"
    dev_token: str = DEFAULT_DEV_TOKEN
    api_tokens: list[str] = Field(
        default_factory=list, description="Service bearer tokens accepted in every environment."
    )
    secret_key: str = DEFAULT_SECRET_KEY
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    retention_days: int = 30
    worker_concurrency: int = 1
    gmed_outbound_host: str | None = None
    gmed_outbound_port: int | None = None
    gmed_receiving_application: str = "GMED"
    gmed_receiving_facility: str = "GMED"
    log_level: str = "INFO"
    public_base_url: str | None = None
    """How sources reach this hub (webhook and push-channel addresses); default: the API's."""
    sync_interval_seconds: int = 900
    sync_jitter_fraction: float = 0.1
    sync_failures_to_open_circuit: int = 5
    sync_circuit_open_seconds: float = 900.0
    sync_concurrency: int = 2
    webhook_window_seconds: int = 300

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.env == "production":
            if self.secret_key == DEFAULT_SECRET_KEY:
                raise ValueError(
                    "refusing to start in production with the default HARMONY_SECRET_KEY"
                )
            if not self.api_tokens:
                raise ValueError("production needs HARMONY_API_TOKENS (the dev token is refused)")
        return self

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.retry_base_seconds, self.retry_max_seconds)

    def accepted_tokens(self) -> frozenset[str]:
        """The dev token only counts in development, so a copied .env cannot open production."""
        tokens = set(self.api_tokens)
        if self.is_development:
            tokens.add(self.dev_token)
        return frozenset(tokens)

    def webhook_base_url(self) -> str:
        return (self.public_base_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def is_development(self) -> bool:
        return self.env == "development"


@lru_cache
def get_settings() -> Settings:
    return Settings()
