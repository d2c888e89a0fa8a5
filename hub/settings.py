"""One Settings object for every process; read from HARMONY_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.message_store import RetryPolicy
from hub.oidc import OidcIssuer
from scheduling.rules import BUILTIN_RULES

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
    oidc_issuers: list[OidcIssuer] = Field(default_factory=list)
    """Trusted OpenID Connect issuers (JSON list; see hub/oidc.py OidcIssuer)."""
    oidc_leeway_seconds: int = 60
    oidc_jwks_max_age_seconds: float = 3600.0
    oidc_jwks_min_refetch_seconds: float = 30.0
    login_max_failures: int = 5
    login_failure_window_seconds: float = 900.0
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or CIDRs whose X-Forwarded-For is believed (audit log, login limits)."""
    audit_flush_seconds: float = 1.0
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
    roster_poll_seconds: float = 0.25
    """How often each API process reads new roster_event rows for the live roster stream."""
    roster_heartbeat_seconds: float = 15.0
    smtp_host: str | None = None
    """Notification email; unset: no email is sent (in-app and push still are)."""
    smtp_port: int = 25
    smtp_sender: str = "harmony@localhost"
    smtp_tls: Literal["none", "starttls", "implicit"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: float = 10.0
    fcm_project_id: str | None = None
    """Push through FCM HTTP v1; unset: no push is sent."""
    fcm_endpoint: str = "https://fcm.googleapis.com"
    fcm_credentials_file: Path | None = None
    """The service account's JSON key file (its token_uri is where tokens are bought)."""
    notification_max_attempts: int = 8
    notification_retry_base_seconds: float = 5.0
    notification_retry_max_seconds: float = 3600.0
    notification_poll_seconds: float = 0.5
    """How often the dispatcher reads new roster events and the deliverer looks for due work."""
    notification_gap_grace_seconds: float = 10.0
    roster_timezone: str = BUILTIN_RULES.timezone
    """Zone of roster weeks (weekly maximum); shifts use their shift type's own zone."""
    roster_min_rest_hours: float = BUILTIN_RULES.min_rest_hours
    roster_weekly_max_hours: float = BUILTIN_RULES.weekly_max_hours
    roster_weekly_max_shifts: int = BUILTIN_RULES.weekly_max_shifts
    roster_forbidden_sequences: list[str] = Field(
        default_factory=lambda: [s.text() for s in BUILTIN_RULES.forbidden_sequences],
        description="'<kind>><kind or *>:<hours>': the second may not start that soon after "
        "the first ends",
    )
    roster_swap_lead_days: int = BUILTIN_RULES.swap_lead_days
    """No swap or drop of a shift that starts within this many days."""
    waitlist_min_lead_minutes: float = Field(default=120.0, ge=0)
    """A freed slot is offered to the waitlist only if it starts at least this far ahead."""
    waitlist_offer_minutes: float = Field(default=30.0, gt=0)
    """How long a waitlist offer stands before it goes to the next patient."""
    ranking_attendance_model: bool = True
    """Let a no-show model learned from the hub's visit history adjust slot ranking (it
    starts once there are 200 outcomes with 20 no-shows; the reasons say when it mattered)."""
    waitlist_poll_seconds: float = Field(default=2.0, gt=0)
    """How often the scheduler looks for freed slots to offer, offers that ran out and
    accepted offers a crash left unbooked; apart from the reminder pass, so an offer goes
    out seconds after a cancel, not a minute."""
    appointment_buffer_minutes: int | None = Field(default=None, ge=0)
    """Minimum gap between a patient's visits, and between a practitioner's visits on slots
    booked in Harmony (GMED, uploads). 0 refuses overlapping visits only; unset: no rule."""
    appointment_practitioner_buffer_minutes: dict[str, int] = Field(default_factory=dict)
    """Per-practitioner buffer, keyed by canonical Practitioner id or identifier 'system|value'."""
    appointment_reminder_poll_seconds: float = 60.0
    """How often the scheduler looks for appointments entering the 24 h and 1 h windows, and
    retries cancellations left over from reschedules."""
    appointment_cancel_max_attempts: int = 8
    """Retries of a cancellation a reschedule could not finish, before it is parked."""

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
