"""RetryingHttp against a real local server: what is retried, what is not, and the waits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.contract import SourceError
from adapters.http import RetryingHttp, RetryPolicy, retry_after_seconds
from adapters.sandbox_server import free_port, serving


class Script:
    """Answers each request with the next scripted status (then 200), counting requests."""

    def __init__(self) -> None:
        self.statuses: list[tuple[int, dict[str, str]]] = []
        self.seen = 0

    async def handle(self, request: Request) -> JSONResponse:
        self.seen += 1
        status, headers = self.statuses.pop(0) if self.statuses else (200, {})
        return JSONResponse({"n": self.seen}, status_code=status, headers=headers)


@pytest.fixture
def served() -> Iterator[tuple[Script, str]]:
    script = Script()
    app = Starlette(routes=[Route("/x", script.handle, methods=["GET", "POST"])])
    with serving(app) as url:
        yield script, url


def _http(waits: list[float]) -> RetryingHttp:
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=5.0)
    return RetryingHttp(httpx.Client(timeout=5), policy, sleep=waits.append)


def test_429_is_retried_after_the_servers_wait_for_any_method(served: tuple[Script, str]) -> None:
    script, url = served
    waits: list[float] = []
    script.statuses = [(429, {"Retry-After": "2"})]
    assert _http(waits).request("POST", f"{url}/x").status_code == 200
    assert waits == [2.0] and script.seen == 2


def test_a_500_is_retried_for_get_but_not_for_a_post(served: tuple[Script, str]) -> None:
    script, url = served
    waits: list[float] = []
    script.statuses = [(500, {})]
    assert _http(waits).request("GET", f"{url}/x").status_code == 200
    assert script.seen == 2
    script.statuses = [(503, {})]
    with pytest.raises(SourceError, match="not retried"):
        _http(waits).request("POST", f"{url}/x")
    assert script.seen == 3
    script.statuses = [(503, {})]
    assert _http(waits).request("POST", f"{url}/x", idempotent=True).status_code == 200


def test_giving_up_names_the_vendor_answer(served: tuple[Script, str]) -> None:
    script, url = served
    script.statuses = [(502, {})] * 3
    with pytest.raises(SourceError, match=r"502.*gave up after 3 attempts") as failed:
        _http([]).request("GET", f"{url}/x")
    assert failed.value.status == 502 and failed.value.retryable


def test_a_connection_that_never_opened_is_retried_even_for_a_post() -> None:
    waits: list[float] = []
    with pytest.raises(SourceError, match="after 3 attempts"):
        _http(waits).request("POST", f"http://127.0.0.1:{free_port()}/x")
    assert len(waits) == 2


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
