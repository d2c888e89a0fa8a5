"""The canonical store's write and read side; the caller owns the session and transaction.

Records are keyed by the identifiers sources give them: any known identifier finds the
stored record, and the record's ``identifier`` array grows into the union of all of them.
Writes are idempotent (same content, no new version) and ordered by message sequence (a
message older than the one that last wrote a record does not overwrite it), because parallel
workers may process messages for one appointment out of order.

A bundle is written as a batch: one identifier lookup for all its records (canonical/lookup.py),
then one bulk statement per table (canonical/pending.py), because a statement per record cost
twenty times the work itself. Every version one write attempt makes carries one timestamp.

Concurrency: each write runs in a SAVEPOINT and is retried when a unique constraint shows
that another transaction created the same record first (a bundle is then redone record by
record). On PostgreSQL the stored rows are locked with SELECT ... FOR UPDATE; SQLite has one
writer at a time, so the write lock is taken before anything is read (which also keeps
pysqlite's SAVEPOINT inside a real transaction).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from canonical import bulk, indexing, model, statements
from canonical.errors import (
    IdentifierConflict,
    InvalidResource,
    RejectedInput,
    UnresolvedReference,
    VersionConflict,
)
from canonical.lookup import Batch, Key, identifier_keys, lookup, one_pk, record_keys
from canonical.pending import NewRow, Pending, flush
from canonical.records import Identifier, Provenance, SourceBundle, SourceRecord
from canonical.tables import identifiers, provenance, resource_versions, resources

MAX_ATTEMPTS = 8
_CONDITIONAL_MARK = "?identifier="


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What one write did; the worker turns these into domain events."""

    resource_type: str
    id: str
    version: int
    created: bool
    changed: bool
    stale: bool
    previous_status: str | None
    status: str | None

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


@dataclass(frozen=True, slots=True)
class ProvenanceEntry:
    """Where one version of a record came from."""

    version: int
    source_system: str
    source_id: str | None
    message_id: int | None
    message_seq: int | None
    mapping_version: str | None
    received_at: datetime
    original_time_text: str | None


def utc_now() -> datetime:
    return datetime.now(UTC)


def random_id() -> str:
    """A random UUID (version 4) as ``str(uuid.uuid4())`` writes it, in a third of the time."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_UUID_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def format_instant(value: datetime) -> str:
    """FHIR instant text in UTC with millisecond precision."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CanonicalRepository:
    """Upserts and reads canonical resources inside the caller's transaction."""

    def __init__(self, session: Session, clock: Callable[[], datetime] = utc_now) -> None:
        self.session = session
        self._clock = clock
        dialect = session.get_bind().dialect
        self._is_sqlite = dialect.name == "sqlite"
        self._dumps = bulk.json_serializer(dialect)
        self._pending = Pending()
        self._batch: Batch | None = None
        # (type, system, value) -> id, for references to records of the bundle being applied;
        # only during apply(), and only from writes whose savepoint was released.
        self._targets: dict[tuple[str, str, str], str] | None = None
        self._learned: dict[tuple[str, str, str], str] = {}
        self._now = clock()
        self._now_text = format_instant(self._now)

    # ------------------------------------------------------------------ writes

    def apply(
        self, bundle: SourceBundle, provenance: Provenance, message_seq: int | None
    ) -> list[UpsertResult]:
        """Upsert every record of a message in order (referenced records come first)."""
        self._targets = {}
        try:
            try:
                return self._apply_at_once(bundle.records, provenance, message_seq)
            except (IntegrityError, RejectedInput):
                # Redo it record by record: each record then retries on its own, and a
                # rejected record leaves the records before it written, as upsert() would.
                self._targets = {}
            return [self.upsert(record, provenance, message_seq) for record in bundle.records]
        finally:
            self._targets = None
            self._batch = None

    def _apply_at_once(
        self, records: list[SourceRecord], prov: Provenance, message_seq: int | None
    ) -> list[UpsertResult]:
        """The whole bundle in one SAVEPOINT: the common case, with no concurrent creator."""
        assert self._targets is not None
        for record in records:
            _check_record(record)
        self._take_write_lock()
        self._begin_attempt()
        results = []
        with self.session.begin_nested():
            self._batch = lookup(self._conn(), records)
            for record in records:
                self._learned = {}
                results.append(self._upsert_once(record, prov, message_seq))
                self._targets.update(self._learned)
            self._flush()
        return results

    def upsert(
        self, record: SourceRecord, provenance: Provenance, message_seq: int | None
    ) -> UpsertResult:
        """Create or update the record a source describes, keyed by its identifiers."""
        _check_record(record)
        primary = record.identifiers[0]
        return self._retrying(
            lambda: self._upsert_once(record, provenance, message_seq),
            f"{record.resource_type} {primary.system}|{primary.value}",
        )

    def save(
        self,
        resource_type: str,
        resource: dict[str, Any],
        provenance: Provenance,
        expected_version: int | None = None,
    ) -> UpsertResult:
        """Write a resource changed through the API (``id`` present: update or create it).

        ``expected_version`` implements If-Match: VersionConflict when the stored version
        differs. API writes carry no message sequence, so they are never stale.
        """
        if resource_type not in model.SUPPORTED_TYPES:
            raise InvalidResource(f"resource type {resource_type!r} is not stored")
        resource_id = resource.get("id")
        if resource_id is not None and not (
            isinstance(resource_id, str) and model.is_valid_id(resource_id)
        ):
            raise InvalidResource(f"{resource_id!r} is not a valid FHIR id")
        return self._retrying(
            lambda: self._save_once(resource_type, resource, provenance, expected_version),
            f"{resource_type}/{resource_id or '(new)'}",
        )

    def _retrying(self, attempt: Callable[[], UpsertResult], what: str) -> UpsertResult:
        self._take_write_lock()
        last_error: IntegrityError | None = None
        for _ in range(MAX_ATTEMPTS):
            self._begin_attempt()
            try:
                with self.session.begin_nested():
                    result = attempt()
                    self._flush()
            except IntegrityError as exc:  # another transaction created it first: re-read
                last_error = exc
                continue
            if self._targets is not None:
                self._targets.update(self._learned)
            return result
        raise RuntimeError(f"could not write {what} after {MAX_ATTEMPTS} attempts") from last_error

    def _begin_attempt(self) -> None:
        """No deferred writes yet, and one timestamp for every version this attempt writes."""
        self._pending = Pending()
        self._learned = {}
        self._now = self._clock()
        self._now_text = format_instant(self._now)

    def _take_write_lock(self) -> None:
        # A no-op UPDATE makes pysqlite BEGIN and SQLite take its write lock (waiting on
        # busy_timeout) before we read, so no later write can fail on a stale snapshot.
        if self._is_sqlite:
            self._conn().execute(statements.SQLITE_WRITE_LOCK)

    def _conn(self) -> Connection:
        return self.session.connection()

    def _flush(self) -> None:
        pending, self._pending = self._pending, Pending()
        flush(self._conn(), pending)

    def _learn(self, rtype: str, keys: Iterable[Key], resource_id: str) -> None:
        for system, value in keys:
            self._learned[(rtype, system, value)] = resource_id

    def _upsert_once(
        self, record: SourceRecord, prov: Provenance, message_seq: int | None
    ) -> UpsertResult:
        rtype = record.resource_type
        resolved = self._resolved(record.resource)
        body = {k: v for k, v in resolved.items() if k != "id" and k != "meta"}
        body["resourceType"] = rtype
        row, matched = self._find_row(rtype, record_keys(record))
        primary = record.identifiers[0]
        source_id = f"{primary.system}|{primary.value}"
        if row is not None and (
            record.if_missing
            or (
                message_seq is not None
                and row.message_seq is not None
                and row.message_seq > message_seq
            )
        ):
            self._learn(rtype, matched, row.id)
            return _result(
                rtype, row.id, row.version_id, row.status, row.status, stale=not record.if_missing
            )
        stored = row.resource if row is not None else {}
        body["identifier"] = _merge_identifiers(
            stored.get("identifier"), body.get("identifier"), record.identifiers
        )
        result = self._write(
            rtype,
            body,
            row,
            prov,
            source_id=source_id,
            message_seq=message_seq,
            original_time_text=record.original_time_text,
            new_id=None,
        )
        # Every identifier of a written version is in the identifier table; of an unchanged
        # record we only vouch for the ones just found there.
        self._learn(rtype, matched, result.id)
        if result.changed:
            self._learn(rtype, identifier_keys(body["identifier"]), result.id)
        return result

    def _save_once(
        self,
        rtype: str,
        resource: dict[str, Any],
        prov: Provenance,
        expected_version: int | None,
    ) -> UpsertResult:
        body = self._resolve_references(copy.deepcopy(resource))
        resource_id = body.pop("id", None)
        body.pop("meta", None)
        if body.get("resourceType", rtype) != rtype:
            raise InvalidResource(f"resourceType is {body['resourceType']!r}, expected {rtype!r}")
        body["resourceType"] = rtype
        row = self._row_by_id(rtype, resource_id, lock=True) if resource_id else None
        if row is None:
            row, _ = self._find_row(rtype, identifier_keys(body.get("identifier")))
            if row is not None and resource_id is not None:
                raise IdentifierConflict(
                    f"an identifier of {rtype}/{resource_id} already names {rtype}/{row.id}"
                )
        current = row.version_id if row is not None else None
        if expected_version is not None and expected_version != current:
            raise VersionConflict(
                f"{rtype}/{resource_id} is at version {current}, not {expected_version}"
            )
        return self._write(
            rtype,
            body,
            row,
            prov,
            source_id=None,
            message_seq=None,
            original_time_text=None,
            new_id=resource_id,
        )

    def _write(
        self,
        rtype: str,
        body: dict[str, Any],
        row: Row[Any] | None,
        prov: Provenance,
        *,
        source_id: str | None,
        message_seq: int | None,
        original_time_text: str | None,
        new_id: str | None,
    ) -> UpsertResult:
        digest = model.content_hash(body)
        if row is not None and model.same_content(row.content_hash, digest, body):
            if message_seq is not None and (row.message_seq or 0) < message_seq:
                self._pending.seqs[row.pk] = message_seq
            return _result(rtype, row.id, row.version_id, row.status, row.status)
        model.validate(rtype, body)
        cols = indexing.columns_of(rtype, body)
        now = self._now
        version = (row.version_id if row is not None else 0) + 1
        resource_id = row.id if row is not None else (new_id or random_id())
        stored = {
            "resourceType": rtype,
            "id": resource_id,
            "meta": {"versionId": str(version), "lastUpdated": self._now_text},
            **{k: v for k, v in body.items() if k != "resourceType"},
        }
        values: dict[str, Any] = {
            "version_id": version,
            "last_updated": now,
            "status": cols.status,
            "start": cols.start,
            "end": cols.end,
            "schedule_id": cols.schedule_id,
            "source_system": prov.source_system,
            "content_hash": digest,
            "resource": stored,
        }
        keys = list(dict.fromkeys(identifier_keys(stored.get("identifier"))))
        pending = self._pending
        pk: int | NewRow
        stored_json = self._dumps(stored)  # once, for the current row and the version row
        if row is None:
            values["message_seq"] = message_seq
            pk = NewRow({"resource_type": rtype, "id": resource_id, **values})
            pk.values["resource"] = stored_json
            pending.inserts.append(pk)
            previous_status = None
            pending.identifiers.extend(_identifier_rows(rtype, pk, keys))
        else:
            pk = row.pk
            values["message_seq"] = _max_seq(row.message_seq, message_seq)
            pending.updates.append({"b_pk": pk, "b_version": row.version_id, **values})
            pending.cleared.append(row.pk)
            previous_status = row.status
            # The identifiers of the earlier version are already in the identifier table.
            recorded = set(identifier_keys(row.resource.get("identifier")))
            new_keys = [k for k in keys if k not in recorded]
            pending.unsure_identifiers.extend(_identifier_rows(rtype, pk, new_keys))
        if self._batch is not None:
            self._batch.touch(rtype, keys, row.pk if row is not None else None)
        pending.search.extend(
            {"resource_pk": pk, "resource_type": rtype, **vars_of(entry)}
            for entry in indexing.entries_of(rtype, stored)
        )
        pending.versions.append(
            {"resource_pk": pk, "version_id": version, "last_updated": now, "resource": stored_json}
        )
        pending.provenance.append(
            {
                "resource_pk": pk,
                "version_id": version,
                "source_system": prov.source_system,
                "source_id": source_id,
                "message_id": prov.message_id,
                "message_seq": message_seq,
                "mapping_version": prov.mapping_version,
                "received_at": prov.received_at,
                "original_time_text": original_time_text,
            }
        )
        return UpsertResult(
            resource_type=rtype,
            id=resource_id,
            version=version,
            created=row is None,
            changed=True,
            stale=False,
            previous_status=previous_status,
            status=cols.status,
        )

    def _find_row(self, rtype: str, keys: list[Key]) -> tuple[Row[Any] | None, list[Key]]:
        """The stored record any of ``keys`` names (locked), and which of them matched.

        IdentifierConflict if they name several records.
        """
        wanted = set(keys)
        if not wanted:
            return None, []
        if self._batch is not None:
            found = self._batch.find(rtype, keys)
            if found is not None:
                return found
            self._flush()  # a write of this bundle touched the record: read it back
        conn = self._conn()
        params = {"b_type": rtype, "b_values": list(dict.fromkeys(v for _, v in keys))}
        if self._is_sqlite:
            joined = conn.execute(statements.ROWS_BY_IDENTIFIER_VALUE, params).all()
            matches = [
                (m.matched_pk, m.matched_system, m.matched_value)
                for m in joined
                if (m.matched_system, m.matched_value) in wanted
            ]
        else:
            joined = []
            matches = [
                (m.resource_pk, m.system, m.value)
                for m in conn.execute(statements.IDENTIFIERS_BY_VALUE, params)
                if (m.system, m.value) in wanted
            ]
        pk = one_pk(rtype, matches)
        if pk is None:
            return None, []
        matched = [(system, value) for _, system, value in matches]
        if self._is_sqlite:
            # The joined row carries every column of canonical_resources under its own name.
            return next(m for m in joined if m.matched_pk == pk), matched
        return conn.execute(statements.ROW_BY_PK_LOCKED, {"b_pk": pk}).first(), matched

    def _row_by_id(self, rtype: str, resource_id: str, lock: bool = False) -> Row[Any] | None:
        where = and_(resources.c.resource_type == rtype, resources.c.id == resource_id)
        return self._row(where, lock)

    def _row(self, where: Any, lock: bool) -> Row[Any] | None:
        query = select(resources).where(where)
        if lock and not self._is_sqlite:
            query = query.with_for_update()
        return self.session.execute(query).first()

    def _resolved(self, node: Any) -> Any:
        """JSON ``node`` with its conditional references resolved (see below).

        Only the objects and arrays on the way to a resolved reference are copies; the rest is
        shared with ``node``. Neither the record nor the written resource is changed later.
        """
        if isinstance(node, list):
            items = [self._resolved(item) for item in node]
            return node if all(a is b for a, b in zip(items, node, strict=True)) else items
        if not isinstance(node, dict):
            return node
        changed = None
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and _CONDITIONAL_MARK in value:
                new = self._resolve(value)
            elif isinstance(value, dict | list):
                new = self._resolved(value)
                if new is value:
                    continue
            else:
                continue
            if changed is None:
                changed = dict(node)
            changed[key] = new
        return node if changed is None else changed

    def _resolve_references(self, node: Any) -> Any:
        """Replace ``Type?identifier=system|value`` references with ``Type/<id>``."""
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "reference" and isinstance(value, str) and _CONDITIONAL_MARK in value:
                    node[key] = self._resolve(value)
                else:
                    self._resolve_references(value)
        elif isinstance(node, list):
            for item in node:
                self._resolve_references(item)
        return node

    def _resolve(self, conditional: str) -> str:
        rtype, _, token = conditional.partition(_CONDITIONAL_MARK)
        system, bar, value = token.partition("|")
        if not bar:
            system, value = "", token
        key = (rtype, system, value)
        if self._targets is not None:
            known = self._targets.get(key) or self._learned.get(key)
            if known is not None:
                return f"{rtype}/{known}"
        found = sorted(
            f"{t}/{i}"
            for t, i in self._conn().execute(
                statements.REFERENCE_TARGET, {"b_value": value, "b_system": system, "b_type": rtype}
            )
        )
        if not found:
            raise UnresolvedReference(f"no {rtype} has identifier {system}|{value}")
        self._learned[key] = found[0].partition("/")[2]
        return found[0]

    # ------------------------------------------------------------------- reads

    def get(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """The current version with ``id`` and ``meta``; None if there is no such record."""
        resource: dict[str, Any] | None = self.session.execute(
            select(resources.c.resource).where(
                resources.c.resource_type == resource_type, resources.c.id == resource_id
            )
        ).scalar_one_or_none()
        return resource

    def version(self, resource_type: str, resource_id: str, version: int) -> dict[str, Any] | None:
        """One stored version (vread); None if the record or the version does not exist."""
        resource: dict[str, Any] | None = self.session.execute(
            select(resource_versions.c.resource)
            .join(resources, resources.c.pk == resource_versions.c.resource_pk)
            .where(
                resources.c.resource_type == resource_type,
                resources.c.id == resource_id,
                resource_versions.c.version_id == version,
            )
        ).scalar_one_or_none()
        return resource

    def history(self, resource_type: str, resource_id: str) -> list[dict[str, Any]]:
        """Every version, newest first (the FHIR _history order); empty if unknown."""
        return [
            r
            for (r,) in self.session.execute(
                select(resource_versions.c.resource)
                .join(resources, resources.c.pk == resource_versions.c.resource_pk)
                .where(resources.c.resource_type == resource_type, resources.c.id == resource_id)
                .order_by(resource_versions.c.version_id.desc())
            )
        ]

    def provenance_of(self, resource_type: str, resource_id: str) -> list[ProvenanceEntry]:
        """Where each version came from, oldest first."""
        rows = self.session.execute(
            select(provenance)
            .join(resources, resources.c.pk == provenance.c.resource_pk)
            .where(resources.c.resource_type == resource_type, resources.c.id == resource_id)
            .order_by(provenance.c.version_id)
        )
        return [
            ProvenanceEntry(
                version=r.version_id,
                source_system=r.source_system,
                source_id=r.source_id,
                message_id=r.message_id,
                message_seq=r.message_seq,
                mapping_version=r.mapping_version,
                received_at=_aware(r.received_at),
                original_time_text=r.original_time_text,
            )
            for r in rows
        ]

    def find_by_identifier(
        self, value: str, system: str | None = None, resource_type: str | None = None
    ) -> list[str]:
        """References (``Type/id``) of the records an identifier names; ``system=None``: any."""
        query = (
            select(resources.c.resource_type, resources.c.id)
            .join(identifiers, identifiers.c.resource_pk == resources.c.pk)
            .where(identifiers.c.value == value)
            .distinct()
        )
        if system is not None:
            query = query.where(identifiers.c.system == system)
        if resource_type is not None:
            query = query.where(identifiers.c.resource_type == resource_type)
        return sorted(f"{t}/{i}" for t, i in self.session.execute(query))

    def count(self, resource_type: str) -> int:
        """How many records of a type are stored."""
        return int(
            self.session.execute(
                select(func.count()).where(resources.c.resource_type == resource_type)
            ).scalar_one()
        )


def _check_record(record: SourceRecord) -> None:
    if record.resource_type not in model.SUPPORTED_TYPES:
        raise InvalidResource(f"resource type {record.resource_type!r} is not stored")
    if not record.identifiers:
        raise InvalidResource(f"{record.resource_type} record has no source identifier")


def _identifier_rows(rtype: str, pk: int | NewRow, keys: list[Key]) -> list[dict[str, Any]]:
    return [{"resource_type": rtype, "system": s, "value": v, "resource_pk": pk} for s, v in keys]


def vars_of(entry: indexing.IndexEntry) -> dict[str, str]:
    return {"param": entry.param, "system": entry.system, "value": entry.value}


def _result(
    rtype: str,
    resource_id: str,
    version: int,
    previous_status: str | None,
    status: str | None,
    stale: bool = False,
) -> UpsertResult:
    return UpsertResult(rtype, resource_id, version, False, False, stale, previous_status, status)


def _merge_identifiers(
    stored: list[dict[str, Any]] | None,
    incoming: list[dict[str, Any]] | None,
    record_identifiers: list[Identifier],
) -> list[dict[str, Any]]:
    """The union of identifiers, stored ones first; an incoming entry may refine a stored one."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for item in stored or []:
        merged[(item.get("system") or "", item.get("value") or "")] = item
    for item in incoming or []:
        merged[(item.get("system") or "", item.get("value") or "")] = item
    for ident in record_identifiers:
        entry = {"system": ident.system, "value": ident.value}
        merged.setdefault((ident.system, ident.value), entry)
    return list(merged.values())


def _max_seq(stored: int | None, given: int | None) -> int | None:
    if stored is None:
        return given
    if given is None:
        return stored
    return max(stored, given)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
