"""Rate limits, server errors and expired tokens, against the sandbox on a real port."""

from __future__ import annotations

import time

import pytest

from adapters.contract import SourceError
from adapters.google.client import make_client
from adapters.http import RetryPolicy
from tests.adapters.google.conftest import Sandbox
from tests.adapters.google.google_inputs import config


def test_429_retry_after_is_honoured(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.state.faults.fail_next(429, retry_after=1, path="freeBusy")
    began = time.monotonic()
    pages = list(client.sync(None))
    assert time.monotonic() - began >= 1.0
    assert client.transport.waits == [1.0]
    assert pages[0].envelope.kind == "freebusy"
    assert [p for _, p in sandbox.state.requests].count("/calendar/v3/freeBusy?alt=json") == 2


def test_retry_after_longer_than_the_policy_fails_with_googles_words(sandbox: Sandbox) -> None:
    client = sandbox.client(RetryPolicy(max_attempts=5, max_delay=2.0))
    sandbox.state.faults.fail_next(429, retry_after=120)
    with pytest.raises(SourceError) as failure:
        next(client.sync(None))
    assert failure.value.status == 429 and failure.value.retryable
    assert "rateLimitExceeded: Rate Limit Exceeded" in str(failure.value)
    assert client.transport.waits == []


def test_5xx_and_403_rate_limits_are_retried_403_forbidden_is_not(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.state.faults.fail_next(503)
    sandbox.state.faults.fail_next(403, reason="userRateLimitExceeded", message="User Rate Limit")
    assert next(client.sync(None)).envelope.kind == "freebusy"
    assert len(client.transport.waits) == 2
    sandbox.state.faults.fail_next(403, reason="forbidden", message="Forbidden")
    with pytest.raises(SourceError) as failure:
        next(client.sync(None))
    assert failure.value.status == 403 and not failure.value.retryable
    assert "forbidden: Forbidden" in str(failure.value)


def test_expired_token_is_refreshed_and_the_call_goes_on(sandbox: Sandbox) -> None:
    client = sandbox.client()
    next(client.sync(None))
    assert sandbox.state.token_grants == 0
    sandbox.state.expire_tokens()
    pages = list(client.sync(None))
    assert len(pages) > 1
    assert sandbox.state.token_grants == 1


def test_revoked_refresh_token_is_not_retryable(sandbox: Sandbox) -> None:
    credentials = {**sandbox.state.credentials(), "refresh_token": "revoked"}
    options = {"calendars": sandbox.calendars}
    client = make_client(config(sandbox.url, credentials, **options))
    sandbox.state.expire_tokens()
    with pytest.raises(SourceError) as failure:
        next(client.sync(None))
    assert not failure.value.retryable and failure.value.status == 401
    assert "invalid_grant" in str(failure.value)


def test_unreachable_server_fails_after_the_policy(sandbox: Sandbox) -> None:
    options = {"calendars": sandbox.calendars}
    cfg = config("http://127.0.0.1:9", sandbox.state.credentials(), **options)
    client = make_client(cfg, policy=RetryPolicy(max_attempts=2, base_delay=0.01), timeout=2)
    with pytest.raises(SourceError, match="after 2 attempts"):
        next(client.sync(None))


def test_missing_credentials_are_refused_at_once(sandbox: Sandbox) -> None:
    with pytest.raises(SourceError, match="refresh_token"):
        make_client(config(sandbox.url, {"client_id": "x"}, calendars=sandbox.calendars))
