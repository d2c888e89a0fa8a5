"""Mapping sets over HTTP: the same operations as ``harmony mappings``, for admin screens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from api.deps import IntegrationPrincipal, SessionDep
from mappings.diff import Change
from mappings.errors import InvalidSourceName, NothingToRollBack, UnknownSource, UnknownVersion
from mappings.model import MappingContent, MappingSet
from mappings.report import UnmappedEntry
from mappings.store import MappingStore, VersionInfo

router = APIRouter(prefix="/api/mappings", tags=["mappings"])


class SourceOut(BaseModel):
    source: str
    active_version: int
    active_label: str
    versions: int


class VersionOut(BaseModel):
    source: str
    version: int
    label: str
    note: str | None
    created_at: datetime
    created_by: str
    active: bool


class VersionDetailOut(VersionOut):
    content: MappingContent


class ChangeOut(BaseModel):
    table: str
    key: str
    kind: str
    before: Any
    after: Any


class DiffOut(BaseModel):
    source: str
    from_version: int
    to_version: int
    changes: list[ChangeOut]


class UnmappedOut(BaseModel):
    source: str
    table: str
    code: str
    count: int
    first_seen: datetime
    last_seen: datetime
    last_message_id: int | None
    checked_against: str | None


@contextmanager
def _http_errors() -> Iterator[None]:
    """Store errors to 4xx with the store's own message, which says what to do next."""
    try:
        yield
    except (UnknownSource, UnknownVersion) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidSourceName as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except NothingToRollBack as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


def _version_out(info: VersionInfo) -> VersionOut:
    return VersionOut(label=info.label, **_fields(info))


def _detail_out(info: VersionInfo, mapping_set: MappingSet) -> VersionDetailOut:
    return VersionDetailOut(label=info.label, content=mapping_set.content, **_fields(info))


def _fields(info: VersionInfo) -> dict[str, Any]:
    return {
        "source": info.source,
        "version": info.version,
        "note": info.note,
        "created_at": info.created_at,
        "created_by": info.created_by,
        "active": info.active,
    }


def _change_out(change: Change) -> ChangeOut:
    return ChangeOut(
        table=change.table,
        key=change.key,
        kind=change.kind,
        before=change.before,
        after=change.after,
    )


def _unmapped_out(entry: UnmappedEntry) -> UnmappedOut:
    return UnmappedOut.model_validate(entry, from_attributes=True)


@router.get("")
def list_sources(session: SessionDep, _principal: IntegrationPrincipal) -> list[SourceOut]:
    """Every source with its active version; shipped defaults are stored on first listing."""
    store = MappingStore(session)
    out = []
    with _http_errors():
        for source in store.sources():
            infos = store.versions(source)
            active = next(i for i in infos if i.active)
            out.append(
                SourceOut(
                    source=source,
                    active_version=active.version,
                    active_label=active.label,
                    versions=len(infos),
                )
            )
    session.commit()
    return out


@router.get("/unmapped")
def unmapped_report(
    session: SessionDep, _principal: IntegrationPrincipal, source: str | None = None
) -> list[UnmappedOut]:
    """Codes seen in messages that the active versions still do not translate."""
    with _http_errors():
        report = MappingStore(session).unmapped(source)
    session.commit()
    return [_unmapped_out(e) for e in report]


@router.get("/{source}")
def get_active(
    source: str, session: SessionDep, _principal: IntegrationPrincipal
) -> VersionDetailOut:
    store = MappingStore(session)
    with _http_errors():
        mapping_set = store.active(source)
        info = store.version_info(source, mapping_set.version)
    session.commit()
    return _detail_out(info, mapping_set)


@router.get("/{source}/versions")
def list_versions(
    source: str, session: SessionDep, _principal: IntegrationPrincipal
) -> list[VersionOut]:
    with _http_errors():
        infos = MappingStore(session).versions(source)
    session.commit()
    return [_version_out(i) for i in infos]


@router.post("/{source}/versions", status_code=status.HTTP_201_CREATED)
def create_version(
    source: str,
    content: MappingContent,
    session: SessionDep,
    principal: IntegrationPrincipal,
    activate: bool = False,
    note: str | None = None,
) -> VersionDetailOut:
    """Store edited content as the next version; ``?activate=true`` switches to it at once."""
    store = MappingStore(session)
    with _http_errors():
        mapping_set = store.create(
            source, content, note=note, created_by=principal.subject, activate=activate
        )
        info = store.version_info(source, mapping_set.version)
    session.commit()
    return _detail_out(info, mapping_set)


@router.get("/{source}/versions/{version}")
def get_version(
    source: str, version: int, session: SessionDep, _principal: IntegrationPrincipal
) -> VersionDetailOut:
    store = MappingStore(session)
    with _http_errors():
        mapping_set = store.get(source, version)
        info = store.version_info(source, version)
    session.commit()
    return _detail_out(info, mapping_set)


@router.post("/{source}/versions/{version}/activate")
def activate_version(
    source: str, version: int, session: SessionDep, principal: IntegrationPrincipal
) -> VersionDetailOut:
    """Workers read the next message through this version."""
    store = MappingStore(session)
    with _http_errors():
        mapping_set = store.activate(source, version, by=principal.subject)
        info = store.version_info(source, version)
    session.commit()
    return _detail_out(info, mapping_set)


@router.post("/{source}/rollback")
def rollback(source: str, session: SessionDep, principal: IntegrationPrincipal) -> VersionDetailOut:
    """Re-activate the version that was active before the current one."""
    store = MappingStore(session)
    with _http_errors():
        mapping_set = store.rollback(source, by=principal.subject)
        info = store.version_info(source, mapping_set.version)
    session.commit()
    return _detail_out(info, mapping_set)


@router.get("/{source}/diff")
def diff_versions(
    source: str,
    session: SessionDep,
    _principal: IntegrationPrincipal,
    from_version: Annotated[int, Query(alias="from")],
    to_version: Annotated[int, Query(alias="to")],
) -> DiffOut:
    """What switching from one version to the other changes, entry by entry."""
    with _http_errors():
        changes = MappingStore(session).diff(source, from_version, to_version)
    session.commit()
    return DiffOut(
        source=source,
        from_version=from_version,
        to_version=to_version,
        changes=[_change_out(c) for c in changes],
    )


@router.get("/{source}/unmapped")
def source_unmapped(
    source: str, session: SessionDep, _principal: IntegrationPrincipal
) -> list[UnmappedOut]:
    store = MappingStore(session)
    with _http_errors():
        store.versions(source)  # 404 for a source we know nothing about
        report = store.unmapped(source)
    session.commit()
    return [_unmapped_out(e) for e in report]
