"""The Epic FHIR R4 client the hub calls: availability sync, $find, $book and cancel.

A sync is two phases, each a chain of searchset pages linked by ``next`` URLs: the Schedules
(the configured ones, else all the server has), then for each Schedule every Slot in the
sync window, whatever its status (``_include=Slot:schedule`` so every stored page names its
Schedule and actors and can be normalized on its own, in any order). No ``status`` filter is
sent: a slot booked in Epic by someone else (or withdrawn) must come back as ``busy`` (or
``entered-in-error``) so the canonical copy stops being offered as free; asking only for free
slots would let it silently drop out of the answer and stay free in Harmony forever.

Each yielded page carries the cursor of the page after it: the next URL and the Schedules
still to visit, so a sync that failed on page 7 resumes at page 7. A finished sync's cursor
starts the next full pass.

Cancellation uses the IHE Scheduling shape: ``Appointment/$book`` with the Appointment read
back and its status set to ``cancelled`` (no Epic-specific PATCH).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from adapters.contract import (
    BookingRequest,
    BookingResult,
    FetchedPage,
    IntegrationConfig,
    SlotUnavailable,
    SourceError,
    envelope,
    require_credentials,
    source_system,
)
from adapters.epic.auth import BackendAuth, token_url_for
from adapters.epic.fhir import FHIR_JSON, next_link, outcome_codes, outcome_text
from adapters.http import RetryingHttp, RetryPolicy, describe

__all__ = ["DEFAULT_DAYS_AHEAD", "DEFAULT_PAGE_SIZE", "EpicClient", "make_client"]

DEFAULT_DAYS_AHEAD = 14
DEFAULT_PAGE_SIZE = 100
_UNAVAILABLE_CODES = frozenset({"conflict", "duplicate"})


class EpicClient:
    """One Epic integration; blocking, safe to share between threads (tokens are shared)."""

    def __init__(
        self,
        config: IntegrationConfig,
        http: RetryingHttp,
        auth: BackendAuth,
        *,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.http = http
        self.auth = auth
        self._today = today
        options = config.options
        self.page_size = int(options.get("page_size", DEFAULT_PAGE_SIZE))
        self.days_ahead = int(options.get("days_ahead", DEFAULT_DAYS_AHEAD))
        schedules = options.get("schedules")
        self.schedules: list[str] | None = [str(s) for s in schedules] if schedules else None

    # ------------------------------------------------------------------ sync

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[FetchedPage]:
        """Schedule pages, then Slot pages (every status) per Schedule, resuming where
        ``cursor`` says."""
        state = dict(cursor) if cursor and cursor.get("phase") in ("schedules", "slots") else None
        if state is None:
            first = self._today()
            state = {
                "phase": "schedules",
                "window": [first.isoformat(), (first + timedelta(self.days_ahead)).isoformat()],
                "schedules": [],
                "next": None,
            }
        if state["phase"] == "schedules":
            url: str | None = state["next"] or self._schedule_search()
            while url is not None:
                body = self._get(url)
                found = [*state["schedules"], *_ids(body, "Schedule")]
                nxt = next_link(body)
                phase = "schedules" if nxt else ("slots" if found else "done")
                state = {**state, "phase": phase, "schedules": found, "next": nxt}
                yield self._page("schedule-bundle", url, body, state)
                url = nxt
        while state["phase"] == "slots":
            remaining: list[str] = state["schedules"]
            url = state["next"] or self._slot_search(remaining[0], state["window"])
            body = self._get(url)
            nxt = next_link(body)
            if nxt is None:
                remaining = remaining[1:]
            phase = "slots" if remaining else "done"
            state = {**state, "phase": phase, "schedules": remaining, "next": nxt}
            yield self._page("slot-bundle", url, body, state)

    def _schedule_search(self) -> str:
        query: dict[str, Any] = {"_count": self.page_size}
        if self.schedules:
            query["_id"] = ",".join(self.schedules)
        return f"{self.base_url}/Schedule?{urlencode(query)}"

    def _slot_search(self, schedule_id: str, window: list[str]) -> str:
        # every status on purpose (see the module docstring): free and taken alike
        query = [
            ("schedule", schedule_id),
            ("start", f"ge{window[0]}"),
            ("start", f"lt{window[1]}"),
            ("_include", "Slot:schedule"),
            ("_count", str(self.page_size)),
        ]
        return f"{self.base_url}/Slot?{urlencode(query)}"

    def _page(
        self, kind: str, url: str, body: Any, cursor: dict[str, Any], method: str = "GET"
    ) -> FetchedPage:
        return FetchedPage(envelope(self.config, kind, f"{method} {url}", body), cursor)

    # ------------------------------------------------------------------ reads

    def read_appointment(self, appointment_id: str) -> FetchedPage:
        url = f"{self.base_url}/Appointment/{appointment_id}"
        return self._page("appointment", url, self._get(url), {})

    def search_appointments(self, params: dict[str, str | list[str]]) -> Iterator[FetchedPage]:
        """Appointment search (e.g. ``patient``, ``date``), every page."""
        url: str | None = f"{self.base_url}/Appointment?{urlencode(params, doseq=True)}"
        while url is not None:
            body = self._get(url)
            nxt = next_link(body)
            yield self._page("appointment-bundle", url, body, {"next": nxt} if nxt else {})
            url = nxt

    def find(
        self, start: datetime, end: datetime, practitioner_id: str | None = None
    ) -> FetchedPage:
        """IHE ``Appointment/$find``: proposed Appointments for free time in [start, end)."""
        parameters: list[dict[str, Any]] = [
            {"name": "start", "valueDateTime": start.isoformat()},
            {"name": "end", "valueDateTime": end.isoformat()},
        ]
        if practitioner_id:
            parameters.append(
                {
                    "name": "practitioner",
                    "valueReference": {"reference": f"Practitioner/{practitioner_id}"},
                }
            )
        url = f"{self.base_url}/Appointment/$find"
        body = self._post(url, {"resourceType": "Parameters", "parameter": parameters})
        return self._page("find-bundle", url, body, {}, "POST")

    # ------------------------------------------------------------------ writes

    def book(self, request: BookingRequest) -> BookingResult:
        """``$book`` of one free slot; SlotUnavailable when Epic says it is taken or gone."""
        appointment: dict[str, Any] = {
            "resourceType": "Appointment",
            "status": "pending",
            "slot": [{"reference": f"Slot/{request.slot_source_id}"}],
            "participant": [
                {
                    "actor": self._patient_reference(request.patient),
                    "required": "required",
                    "status": "needs-action",
                }
            ],
        }
        for key in ("start", "end"):
            if request.slot.get(key):
                appointment[key] = request.slot[key]
        if request.appointment_type:
            appointment["appointmentType"] = {"text": request.appointment_type}
        if request.reason:
            appointment["reasonCode"] = [{"text": request.reason}]
        if request.comment:
            appointment["comment"] = request.comment
        url = f"{self.base_url}/Appointment/$book"
        body = self._post(url, _book_parameters(appointment), booking=True)
        booked = _first(body, "Appointment")
        if booked is None or not booked.get("id"):
            raise SourceError(f"$book answered without an Appointment: {str(body)[:300]}")
        context = {**self.config.options, "slot": request.slot_source_id}
        page = FetchedPage(envelope(self.config, "book-response", f"POST {url}", body, context), {})
        return BookingResult(str(booked["id"]), page)

    def cancel(self, appointment_source_id: str, reason: str | None) -> FetchedPage:
        """Read the Appointment, then ``$book`` it back with status ``cancelled``."""
        current = self._get(f"{self.base_url}/Appointment/{appointment_source_id}")
        appointment = {k: v for k, v in current.items() if k not in ("meta", "text")}
        appointment["status"] = "cancelled"
        if reason:
            appointment["cancelationReason"] = {"text": reason}
        url = f"{self.base_url}/Appointment/$book"
        body = self._post(url, _book_parameters(appointment))
        return self._page("cancel-response", url, body, {}, "POST")

    def close(self) -> None:
        self.http.client.close()

    def _patient_reference(self, patient: dict[str, Any] | None) -> dict[str, Any]:
        """``Patient/<Epic id>`` when the canonical patient has one, else a logical reference."""
        if not patient:
            default = self.config.options.get("default_patient")
            if default:  # a kiosk or demo integration books for one registered patient
                return {"reference": f"Patient/{default}"}
            raise SourceError(
                "booking in Epic needs a patient (or the integration option default_patient)",
                retryable=False,
            )
        own = source_system(self.config.name, "Patient")
        identifiers = patient.get("identifier") or []
        display = next((n.get("text") for n in patient.get("name") or [] if n.get("text")), None)
        ref: dict[str, Any] = {}
        for ident in identifiers:
            if ident.get("system") == own and ident.get("value"):
                ref = {"reference": f"Patient/{ident['value']}"}
                break
        else:
            if not identifiers:
                raise SourceError("the patient has no identifier Epic could match", retryable=False)
            first = identifiers[0]
            ref = {"identifier": {"system": first.get("system"), "value": first.get("value")}}
        if display:
            ref["display"] = display
        return ref

    # ------------------------------------------------------------------ transport

    def _get(self, url: str) -> Any:
        return _answer(self.http.request("GET", url, headers={"Accept": FHIR_JSON}))

    def _post(self, url: str, body: dict[str, Any], *, booking: bool = False) -> Any:
        """``$find`` is safe to retry; ``$book`` (booking or cancelling) is not."""
        response = self.http.request(
            "POST",
            url,
            idempotent=not booking,
            content=orjson.dumps(body),
            headers={"Accept": FHIR_JSON, "Content-Type": FHIR_JSON},
        )
        return _answer(response, booking=booking)


def _book_parameters(appointment: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "appointment-resource", "resource": appointment}],
    }


def _answer(response: httpx.Response, *, booking: bool = False) -> Any:
    """The JSON body of a success; a SourceError carrying Epic's OperationOutcome otherwise."""
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    status = response.status_code
    if 200 <= status < 300:
        if body is None:
            raise SourceError(f"unreadable answer: {describe(response)}", status=status)
        return body
    text = outcome_text(body) if isinstance(body, dict) else describe(response)
    where = f"{response.request.method} {response.request.url} -> {status}"
    if booking and (status == 409 or (status == 422 and outcome_codes(body) & _UNAVAILABLE_CODES)):
        raise SlotUnavailable(f"{where}: {text}", status=status)
    retryable = status >= 500 or status in (401, 408, 429)
    raise SourceError(f"{where}: {text}", retryable=retryable, status=status)


def _ids(bundle: Any, resource_type: str) -> list[str]:
    ids = []
    for entry in bundle.get("entry") or [] if isinstance(bundle, dict) else []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == resource_type and resource.get("id"):
            ids.append(str(resource["id"]))
    return ids


def _first(body: Any, resource_type: str) -> dict[str, Any] | None:
    if isinstance(body, dict) and body.get("resourceType") == resource_type:
        return body
    for entry in body.get("entry") or [] if isinstance(body, dict) else []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == resource_type:
            return dict(resource)
    return None


def make_client(
    config: IntegrationConfig,
    *,
    policy: RetryPolicy | None = None,
    timeout: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> EpicClient:
    """An EpicClient from the integration's credentials (client_id, private_key_pem, kid)."""
    creds = require_credentials(config, "Epic", "client_id", "private_key_pem", "kid")
    policy = policy or RetryPolicy()
    client = httpx.Client(timeout=timeout)
    token_url = str(config.options.get("token_url") or token_url_for(config.base_url))
    auth = BackendAuth(
        RetryingHttp(client, policy, sleep=sleep),
        token_url,
        str(creds["client_id"]),
        str(creds["private_key_pem"]),
        str(creds["kid"]),
        config.options.get("scope"),
    )
    http = RetryingHttp(client, policy, token=auth.token, sleep=sleep)
    return EpicClient(config, http, auth)
