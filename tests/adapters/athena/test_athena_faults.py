"""What the client does when athena rate-limits, fails, slows down or expires tokens."""

from __future__ import annotations

import time

import pytest

from adapters.athena.client import make_client
from adapters.contract import SourceError
from adapters.http import RetryPolicy
from tests.adapters.athena.athena_helpers import config
from tests.adapters.athena.conftest import Served


def test_429_retry_after_is_honoured(served: Served) -> None:
    served.state.seed_slots(3)
    served.state.faults.fail_next(429, retry_after=2)
    pages = list(served.client(departmentids=["1"]).sync(None))
    assert pages and 2.0 in served.sleeps
    assert served.sleeps[0] == 2.0


def test_5xx_is_retried_with_backoff(served: Served) -> None:
    served.state.seed_slots(3)
    served.state.faults.fail_next(500, times=2, path="/departments")
    pages = list(served.client(departmentids=["1"], attempts=3).sync(None))
    assert pages[0].envelope.kind == "departments"
    assert len(served.sleeps) == 2 and all(0 < s <= 0.01 for s in served.sleeps)


def test_5xx_beyond_the_attempts_fails_retryable(served: Served) -> None:
    served.state.seed_slots(1)
    served.state.faults.fail_next(503, times=5)
    with pytest.raises(SourceError, match="503") as caught:
        list(served.client(attempts=2).sync(None))
    assert caught.value.retryable


def test_expired_token_is_refreshed_once(served: Served) -> None:
    served.state.seed_slots(3)
    client = served.client(departmentids=["1"])
    cursor = list(client.sync(None))[-1].cursor
    served.state.expire_tokens()
    assert list(client.sync(cursor))
    assert client.tokens.fetches == 2


def test_bad_credentials_fail_for_good(served: Served) -> None:
    served.state.clients = {"sandbox-client": "another-secret"}
    with pytest.raises(SourceError, match="invalid_client") as caught:
        list(served.client().sync(None))
    assert caught.value.retryable is False and caught.value.status == 401


def test_athena_error_bodies_become_source_errors(served: Served) -> None:
    served.state.faults.fail_next(400, error="The start date is invalid.", path="/subscription")
    with pytest.raises(SourceError, match="The start date is invalid") as caught:
        list(served.client().sync(None))
    assert caught.value.retryable is False


def test_slow_answers_time_out_and_are_retried(served: Served) -> None:
    served.state.seed_slots(1)
    served.state.faults.slow_seconds = 0.5
    with pytest.raises(SourceError, match="ReadTimeout"):
        list(served.client(timeout=0.1, attempts=2).sync(None))
    assert len(served.sleeps) == 1


def test_rate_limit_per_second(served: Served) -> None:
    served.state.seed_slots(30)
    served.state.rate_limit = 3
    client = make_client(
        config(served.url, departmentids=["1"], page_size=5),
        policy=RetryPolicy(max_attempts=4, base_delay=0.001),
        sleep=lambda s: (served.sleeps.append(s), time.sleep(s)),  # really wait here
    )
    try:
        pages = list(client.sync(None))
    finally:
        client.close()
    assert (
        sum(
            len(p.envelope.body.get("appointments", []))
            for p in pages
            if p.envelope.kind == "appointments-open"
        )
        == 30
    )
    assert served.sleeps and set(served.sleeps) == {1.0}


def test_practice_ids_and_cursors_are_checked(served: Served) -> None:
    with pytest.raises(SourceError, match="practiceid is required"):
        make_client(config(served.url, practiceid=""))
    with pytest.raises(SourceError, match="unreadable"):
        list(served.client().sync({"mode": "full"}))
