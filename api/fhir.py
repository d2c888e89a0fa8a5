"""FHIR R4 REST over the canonical store: metadata, read, vread, history and search.

Every answer under /fhir, errors included, is ``application/fhir+json``; an error is an
OperationOutcome so FHIR clients (Epic, HAPI, SMART apps) can show it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.access import FhirReadAccess, FhirSearchScope
from api.deps import SessionDep, SettingsDep
from api.fhir_documents import (
    FhirResponse,
    capability_statement,
    history_bundle,
    operation_outcome,
    searchset,
)
from canonical.model import SUPPORTED_TYPES, is_valid_id, parse_instant
from canonical.repository import CanonicalRepository, format_instant
from canonical.search import SearchError, search

log = logging.getLogger(__name__)

PREFIX = "/fhir"
router = APIRouter(prefix=PREFIX, tags=["fhir"])


class FhirError(Exception):
    """An error to answer with an OperationOutcome and an HTTP status."""

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics


def operation_outcome_response(status: int, code: str, diagnostics: str) -> Response:
    """An OperationOutcome with one issue, as the body of an error response."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return FhirResponse(operation_outcome(code, diagnostics), status_code=status, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    """Render errors under /fhir as OperationOutcome; leave other paths as FastAPI has them."""

    def is_fhir(request: Request) -> bool:
        return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")

    @app.exception_handler(FhirError)
    async def _fhir_error(_request: Request, exc: FhirError) -> Response:
        return operation_outcome_response(exc.status, exc.code, exc.diagnostics)

    @app.exception_handler(SearchError)
    async def _search_error(_request: Request, exc: SearchError) -> Response:
        return operation_outcome_response(400, "invalid", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not is_fhir(request):
            return await http_exception_handler(request, exc)
        code = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden"}
        return operation_outcome_response(
            exc.status_code, code.get(exc.status_code, "processing"), str(exc.detail)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        if not is_fhir(request):
            return await request_validation_exception_handler(request, exc)
        return operation_outcome_response(400, "invalid", str(exc.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        if not is_fhir(request):
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        return operation_outcome_response(500, "exception", "internal server error; see logs")


async def json_body(request: Request) -> Any:
    """The request body as JSON; an OperationOutcome (400) when it is not."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise FhirError(400, "invalid", f"body is not valid JSON: {exc}") from None


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _check_type(resource_type: str) -> None:
    if resource_type not in SUPPORTED_TYPES:
        raise FhirError(
            404,
            "not-supported",
            f"resource type {resource_type!r} is not served here; supported: "
            + ", ".join(SUPPORTED_TYPES),
        )


def _not_found(resource_type: str, resource_id: str) -> FhirError:
    return FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")


def _resource_response(resource: dict[str, object]) -> Response:
    meta = resource["meta"]
    assert isinstance(meta, dict)
    last_updated = parse_instant(str(meta["lastUpdated"]))
    headers = {"ETag": f'W/"{meta["versionId"]}"'}
    if last_updated is not None:
        headers["Last-Modified"] = format_datetime(last_updated, usegmt=True)
    return FhirResponse(resource, headers=headers)


@router.get("/metadata")
def metadata(request: Request) -> Response:
    """The CapabilityStatement; open without a token, as FHIR clients expect."""
    app_version = getattr(request.app, "version", "0")
    return FhirResponse(
        capability_statement(_base(request), app_version, format_instant(datetime.now(UTC)))
    )


@router.get("/{resource_type}")
def search_type(
    resource_type: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    own_only: FhirSearchScope,
) -> Response:
    """Search; results come a page at a time with next/previous links."""
    _check_type(resource_type)
    params = request.query_params.multi_items() + own_only
    result = search(session, resource_type, params, ZoneInfo(settings.default_timezone))
    links = {"self": str(request.url)}
    if result.count > 0 and result.offset + result.count < result.total:
        links["next"] = _page_url(request, result.offset + result.count, result.count)
    if result.offset > 0 and result.count > 0:
        links["previous"] = _page_url(request, max(0, result.offset - result.count), result.count)
    return FhirResponse(searchset(_base(request), result.resources, result.total, links))


def _page_url(request: Request, offset: int, count: int) -> str:
    return str(request.url.include_query_params(_offset=offset, _count=count))


@router.get("/{resource_type}/{resource_id}")
def read(
    resource_type: str, resource_id: str, session: SessionDep, _access: FhirReadAccess
) -> Response:
    """The current version, with ETag and Last-Modified."""
    _check_type(resource_type)
    resource = (
        CanonicalRepository(session).get(resource_type, resource_id)
        if is_valid_id(resource_id)
        else None
    )
    if resource is None:
        raise _not_found(resource_type, resource_id)
    return _resource_response(resource)


@router.get("/{resource_type}/{resource_id}/_history")
def history(
    resource_type: str,
    resource_id: str,
    request: Request,
    session: SessionDep,
    _access: FhirReadAccess,
) -> Response:
    """Every version, newest first."""
    _check_type(resource_type)
    versions = (
        CanonicalRepository(session).history(resource_type, resource_id)
        if is_valid_id(resource_id)
        else []
    )
    if not versions:
        raise _not_found(resource_type, resource_id)
    return FhirResponse(history_bundle(_base(request), str(request.url), versions))


@router.get("/{resource_type}/{resource_id}/_history/{version_id}")
def vread(
    resource_type: str,
    resource_id: str,
    version_id: str,
    session: SessionDep,
    _access: FhirReadAccess,
) -> Response:
    """One past version."""
    _check_type(resource_type)
    resource = None
    if is_valid_id(resource_id) and version_id.isdigit():
        resource = CanonicalRepository(session).version(resource_type, resource_id, int(version_id))
    if resource is None:
        raise FhirError(
            404, "not-found", f"{resource_type}/{resource_id} has no version {version_id}"
        )
    return _resource_response(resource)
