"""The athenahealth REST v1 client the hub runs: paged sync, booking, cancel, reschedule.

Paging follows athena's ``next`` link (relative to the server root) and records the offset
it names, so a stopped sync resumes with ``?offset=`` at the first page it did not yield.
The changed feed marks what it hands out as processed, so it is resumed by asking again;
a run that finds the subscription gone re-subscribes and reads everything (changes made
while unsubscribed were never recorded). Because athena forgets what it handed out, a page
of changes the hub never stored (a crash between athena's answer and the store) is found
again: every incremental run, and every run resumed before its changed feed was stored,
first re-reads the changes athena handed out since shortly before the cursor's
``changed_at`` (``showprocessedstartdatetime``), then reads the new ones. Re-read changes
the hub already has are harmless (upserts are idempotent and stale-guarded); a re-read that
finds nothing yields no page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx

from adapters.athena.auth import server_root, token_cache
from adapters.athena.cursor import CHANGED, FULL, Position, Step, steps
from adapters.athena.errors import checked
from adapters.athena.values import number, text
from adapters.contract import (
    BookingRequest,
    BookingResult,
    FetchedPage,
    IntegrationConfig,
    SourceError,
    envelope,
    source_system,
)
from adapters.http import RetryingHttp, RetryPolicy

__all__ = ["AthenaClient", "make_client"]

DEFAULT_PAGE_SIZE = 500
DEFAULT_CANCEL_REASON = "Cancelled through Harmony"
DEFAULT_CHANGED_OVERLAP_SECONDS = 10
"""How far before the last stored read of the changed feed a replay starts (clock skew)."""
ATHENA_EASTERN = ZoneInfo("America/New_York")
"""athena reads showprocessedstartdatetime/enddatetime as Eastern time."""
PROCESSED_FORMAT = "%m/%d/%Y %H:%M:%S"


def make_client(
    config: IntegrationConfig,
    *,
    policy: RetryPolicy | None = None,
    timeout: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> AthenaClient:
    """The client for one athena integration (options: practiceid, departmentids ...);
    ``sleep`` is how retries wait (tests record the waits instead)."""
    return AthenaClient(config, policy=policy or RetryPolicy(), timeout=timeout, sleep=sleep)


def _list(value: Any) -> list[str] | None:
    if value is None or value == "" or value == []:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [text(i) for i in items if text(i)]


class AthenaClient:
    """One practice of one athena integration; blocking, for a worker thread."""

    def __init__(
        self,
        config: IntegrationConfig,
        *,
        policy: RetryPolicy,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        options = config.options
        self.config = config
        self.practiceid = text(options.get("practiceid"))
        if not self.practiceid:
            raise SourceError(
                f"integration {config.name}: option practiceid is required", retryable=False
            )
        self.root = server_root(config.base_url)
        self.api = f"{self.root}/v1/{self.practiceid}"
        self.departmentids = _list(options.get("departmentids"))
        self.providerids = _list(options.get("providerids"))
        self.appointmenttypeids = _list(options.get("appointmenttypeids"))
        self.days_ahead = number(options.get("days_ahead")) or 14
        self.page_size = number(options.get("page_size")) or DEFAULT_PAGE_SIZE
        overlap = number(options.get("changed_overlap_seconds"))
        self.changed_overlap = timedelta(
            seconds=DEFAULT_CHANGED_OVERLAP_SECONDS if overlap is None else max(overlap, 0)
        )
        self._client = httpx.Client(timeout=timeout)
        self.tokens = token_cache(config, RetryingHttp(self._client, policy, sleep=sleep))
        self.http = RetryingHttp(self._client, policy, token=self.tokens.get, sleep=sleep)

    # -- sync -------------------------------------------------------------------------------

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[FetchedPage]:
        """Pages since ``cursor``; each page's cursor resumes after it. None: everything."""
        position = Position.from_cursor(cursor)
        if position.step == 0 and position.offset == 0:
            position = self._start_run(position)
        position = self._plan_replay(position)
        position = position.with_window(date.today(), self.days_ahead)
        while True:
            plan = steps(position, self.departmentids)
            if position.step >= len(plan):
                return
            for page, after in self._read_step(position, plan[position.step]):
                if page is not None:
                    yield page
                position = after

    def _start_run(self, position: Position) -> Position:
        """A run starts by making sure the changed feed is recording; if it was not, the
        changes in between are lost to it and this run reads everything. A full run reads
        everything, so what the feed handed out before it began is covered by it."""
        status = checked(self.http.request("GET", f"{self.api}/appointments/changed/subscription"))
        if text(status.get("status") if isinstance(status, dict) else "").upper() != "ACTIVE":
            checked(
                self.http.request(
                    "POST", f"{self.api}/appointments/changed/subscription", idempotent=True
                )
            )
            position = replace(position, mode=FULL, replay_start=None, replay_end=None)
        if position.mode == FULL:
            return replace(position, changed_at=_now().isoformat())
        return position

    def _plan_replay(self, position: Position) -> Position:
        """Before new changes are read, re-read what athena handed out since shortly before
        the last stored read: a page it answered may never have been stored. Skipped once
        the run's new changes are stored, and kept when resuming inside the replay itself."""
        if position.mode != CHANGED or not position.changed_at:
            return position  # a full run, or a cursor from before changed_at was recorded
        if position.step > position.live_step:
            return position  # the changed feed of this run is stored
        if position.step < position.live_step and position.offset > 0:
            return position  # inside the replay: its window is fixed, resume by offset
        try:
            since = datetime.fromisoformat(position.changed_at)
        except ValueError:
            raise SourceError(
                f"athena sync cursor changed_at {position.changed_at!r} is unreadable",
                retryable=False,
            ) from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return replace(
            position,
            step=0,
            offset=0,
            replay_start=_eastern(since - self.changed_overlap),
            replay_end=_eastern(_now() + self.changed_overlap),
        )

    def _params(self, step: Step, position: Position) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": self.page_size}
        if step.departmentid is not None:
            params["departmentid"] = step.departmentid
            if self.providerids:
                params["providerid"] = ",".join(self.providerids)
            params["startdate"], params["enddate"] = position.startdate, position.enddate
        if step.kind == "appointments-open" and self.appointmenttypeids:
            params["appointmenttypeid"] = ",".join(self.appointmenttypeids)
        if step.replay:
            params["showprocessedstartdatetime"] = position.replay_start
            params["showprocessedenddatetime"] = position.replay_end
        if step.kind != "appointments-changed" or step.replay:
            params["offset"] = position.offset
        return params

    def _read_step(
        self, position: Position, step: Step
    ) -> Iterator[tuple[FetchedPage | None, Position]]:
        """The pages of one list, each with the position after it (within this run); a
        replay page without changes is None (nothing to store, nothing was lost)."""
        url: str = f"{self.api}/{step.path}"
        params: dict[str, Any] | None = self._params(step, position)
        live = step.kind == "appointments-changed" and not step.replay
        while True:
            response = self.http.request("GET", url, params=params)
            body = checked(response)
            if live:  # athena has marked this page's changes processed by now
                position = replace(position, changed_at=_now().isoformat())
            if step.kind == "departments":
                position = self._learn_departments(position, body)
            link = body.get("next") if isinstance(body, dict) else None
            if link:
                url, params = self.root + str(link), None
                after = replace(position, offset=_offset_of(str(link), position, body))
            else:
                after = replace(position, step=position.step + 1, offset=0)
            resume = after
            if after.step >= len(steps(after, self.departmentids)):
                resume = after.next_run()
            context = {
                **self.config.options,
                "practiceid": self.practiceid,
                "department_timezones": {k: v for k, v in position.departments.items() if v},
            }
            if step.departmentid is not None:
                context["departmentid"] = step.departmentid
            asked = f"GET {response.request.url}"
            if step.replay and not _listed(body):
                yield None, after
            else:
                page = envelope(self.config, step.kind, asked, body, context)
                yield FetchedPage(page, resume.to_cursor()), after
            position = after
            if not link:
                return

    @staticmethod
    def _learn_departments(position: Position, body: Any) -> Position:
        found = dict(position.departments)
        for item in body.get("departments", []) if isinstance(body, dict) else []:
            if departmentid := text(item.get("departmentid")):
                found[departmentid] = text(item.get("timezonename"))
        return replace(position, departments=found)

    # -- writes -----------------------------------------------------------------------------

    def book(self, request: BookingRequest) -> BookingResult:
        """Book the open slot: athena books it under the slot's own appointment id."""
        appointmentid = text(request.slot_source_id)
        form: dict[str, str] = {"patientid": self._patient_id(request.patient)}
        if kind := self._appointment_type(request):
            form["appointmenttypeid"] = kind
        if request.comment or request.reason:
            form["bookingnote"] = request.comment or request.reason or ""
        url = f"{self.api}/appointments/{appointmentid}"
        body = checked(self.http.request("PUT", url, data=form, idempotent=False), booking=True)
        booked = body[0] if isinstance(body, list) and body else body
        source_id = text(booked.get("appointmentid")) if isinstance(booked, dict) else ""
        page = envelope(self.config, "appointment", f"PUT {url}", body, self._context())
        return BookingResult(source_id or appointmentid, FetchedPage(page, {}))

    def cancel(self, appointment_source_id: str, reason: str | None) -> FetchedPage:
        """Cancel, then read the appointment back (athena's answer is only its status)."""
        current = self._get(appointment_source_id)
        if text(current.get("appointmentstatus")).lower() != "x":
            form = {
                "patientid": self._required_patient(current, appointment_source_id),
                "cancellationreason": reason or DEFAULT_CANCEL_REASON,
            }
            url = f"{self.api}/appointments/{appointment_source_id}/cancel"
            checked(self.http.request("PUT", url, data=form))
        return self._page_of(appointment_source_id)

    def reschedule(
        self,
        appointment_source_id: str,
        new_slot_source_id: str,
        patient: dict[str, Any] | None = None,
    ) -> BookingResult:
        """Move a booked appointment to another open slot; the answer is the new booking.
        The old appointment turns cancelled, which the next sync's changed feed brings."""
        current = self._get(appointment_source_id)
        patientid = (
            self._patient_id(patient)
            if patient
            else self._required_patient(current, appointment_source_id)
        )
        url = f"{self.api}/appointments/{appointment_source_id}/reschedule"
        form = {"newappointmentid": text(new_slot_source_id), "patientid": patientid}
        body = checked(self.http.request("PUT", url, data=form, idempotent=False), booking=True)
        moved = body[0] if isinstance(body, list) and body else body
        new_id = text(moved.get("appointmentid")) if isinstance(moved, dict) else ""
        new_id = new_id or text(new_slot_source_id)
        return BookingResult(new_id, self._page_of(new_id))

    def close(self) -> None:
        self._client.close()

    # -- details ----------------------------------------------------------------------------

    def _context(self) -> dict[str, Any]:
        return {**self.config.options, "practiceid": self.practiceid}

    def _get(self, appointmentid: str) -> dict[str, Any]:
        body = checked(self.http.request("GET", f"{self.api}/appointments/{appointmentid}"))
        found = body[0] if isinstance(body, list) and body else body
        if not isinstance(found, dict):
            raise SourceError(f"athena has no appointment {appointmentid}", retryable=False)
        return found

    def _page_of(self, appointmentid: str) -> FetchedPage:
        url = f"{self.api}/appointments/{appointmentid}"
        body = checked(self.http.request("GET", url))
        return FetchedPage(
            envelope(self.config, "appointment", f"GET {url}", body, self._context()), {}
        )

    def _patient_id(self, patient: dict[str, Any] | None) -> str:
        wanted = source_system(self.config.name, "patientid")
        for ident in (patient or {}).get("identifier") or []:
            if ident.get("system") == wanted and text(ident.get("value")):
                return text(ident["value"])
        if default := text(self.config.options.get("default_patientid")):
            return default
        raise SourceError(
            f"booking in athena needs a patient id: the patient has no {wanted} identifier "
            "and the integration has no default_patientid option",
            retryable=False,
        )

    @staticmethod
    def _required_patient(appointment: dict[str, Any], appointmentid: str) -> str:
        patientid = text(appointment.get("patientid"))
        if not patientid:
            raise SourceError(f"athena appointment {appointmentid} has no patient", retryable=False)
        return patientid

    def _appointment_type(self, request: BookingRequest) -> str | None:
        if request.appointment_type and request.appointment_type.isdigit():
            return request.appointment_type
        wanted = source_system(self.config.name, "appointmenttypeid")
        for coding in (request.slot.get("appointmentType") or {}).get("coding") or []:
            if coding.get("system") == wanted and coding.get("code"):
                return text(coding["code"])
        return None


def _offset_of(link: str, position: Position, body: Any) -> int:
    """The offset a ``next`` link names; else the current one plus what this page held."""
    values = parse_qs(urlsplit(link).query).get("offset")
    if values and values[0].isdigit():
        return int(values[0])
    if position.mode == CHANGED and position.step == position.live_step:
        return 0
    return position.offset + len(_listed(body))


def _listed(body: Any) -> list[Any]:
    """The list a page holds (appointments, departments ...); [] when none."""
    if not isinstance(body, dict):
        return []
    return next((v for v in body.values() if isinstance(v, list)), [])


def _now() -> datetime:
    return datetime.now(UTC)


def _eastern(moment: datetime) -> str:
    """A moment as athena's showprocessed parameters take it: Eastern, to the second."""
    return moment.astimezone(ATHENA_EASTERN).strftime(PROCESSED_FORMAT)
