"""Stored mapping versions per source: create, activate, roll back, diff, report unmapped codes.

The caller owns the transaction (``session.commit()``); the store only reads and writes
through the session it is given, so a worker can record the version it used in the same
commit as the records it made with it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mappings.defaults import DEFAULTS_DIR, check_source_name, load_default, shipped_sources
from mappings.diff import Change, diff_content
from mappings.errors import NothingToRollBack, UnknownSource, UnknownVersion
from mappings.model import MappingContent, MappingSet
from mappings.report import UnmappedEntry, is_mapped
from mappings.tables import (
    CODE_LENGTH,
    SOURCE_LENGTH,
    mapping_activations,
    mapping_unmapped_codes,
    mapping_versions,
)

SHIPPED_BY = "harmony (shipped defaults)"
_CREATE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A stored version's bookkeeping, without its content."""

    source: str
    version: int
    note: str | None
    created_at: datetime
    created_by: str
    active: bool

    @property
    def label(self) -> str:
        return f"{self.source}@v{self.version}"


@dataclass(frozen=True, slots=True)
class Activation:
    """One entry of the activation log (``kind``: defaults, activate or rollback)."""

    source: str
    version: int
    kind: str
    activated_at: datetime
    activated_by: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we write is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class MappingStore:
    """Versioned mapping sets in the database, with the shipped files as version 1."""

    def __init__(self, session: Session, defaults_dir: Path = DEFAULTS_DIR) -> None:
        self.session = session
        self.defaults_dir = defaults_dir

    # -- reading ---------------------------------------------------------------------------

    def sources(self) -> list[str]:
        """Sources with stored versions plus those Harmony ships defaults for."""
        stored = self.session.scalars(select(mapping_versions.c.source).distinct()).all()
        return sorted(set(stored) | set(shipped_sources(self.defaults_dir)))

    def active_version(self, source: str) -> int:
        """The active version number: one indexed row, cheap enough to ask per message."""
        row = self._current_activation(source)
        if row is None:
            return self.ensure_defaults(source).version
        return int(row.version)

    def active(self, source: str) -> MappingSet:
        return self.get(source, self.active_version(source))

    def get(self, source: str, version: int) -> MappingSet:
        content = self._content(source, version)
        if content is None and not self._has_versions(source):
            self.ensure_defaults(source)  # raises UnknownSource when nothing is shipped
            content = self._content(source, version)
        if content is None:
            raise UnknownVersion(source, version)
        return MappingSet(
            source=source, version=version, content=MappingContent.model_validate(content)
        )

    def versions(self, source: str) -> list[VersionInfo]:
        """Every stored version, oldest first; shipped defaults are stored on first ask."""
        self._ensure_known(source)
        current = self._current_activation(source)
        active = None if current is None else int(current.version)
        rows = self.session.execute(
            select(
                mapping_versions.c.version,
                mapping_versions.c.note,
                mapping_versions.c.created_at,
                mapping_versions.c.created_by,
            )
            .where(mapping_versions.c.source == source)
            .order_by(mapping_versions.c.version)
        ).all()
        return [
            VersionInfo(
                source=source,
                version=int(r.version),
                note=r.note,
                created_at=_aware(r.created_at),
                created_by=r.created_by,
                active=int(r.version) == active,
            )
            for r in rows
        ]

    def version_info(self, source: str, version: int) -> VersionInfo:
        for info in self.versions(source):
            if info.version == version:
                return info
        raise UnknownVersion(source, version)

    def history(self, source: str) -> list[Activation]:
        """The activation log, oldest first."""
        self._ensure_known(source)
        rows = self.session.execute(
            select(mapping_activations)
            .where(mapping_activations.c.source == source)
            .order_by(mapping_activations.c.id)
        ).all()
        return [
            Activation(
                source=source,
                version=int(r.version),
                kind=r.kind,
                activated_at=_aware(r.activated_at),
                activated_by=r.activated_by,
            )
            for r in rows
        ]

    def diff(self, source: str, a: int, b: int) -> list[Change]:
        """What activating version ``b`` instead of ``a`` would change."""
        return diff_content(self.get(source, a).content, self.get(source, b).content)

    # -- writing ---------------------------------------------------------------------------

    def ensure_defaults(self, source: str) -> MappingSet:
        """Store and activate the shipped set as version 1 if the source has no versions.

        Returns the active set. Two processes may race here; the loser's insert is undone
        by its savepoint and it reads the winner's row.
        """
        check_source_name(source)
        if self._has_versions(source):
            current = self._current_activation(source)
            if current is None:  # versions created but none activated: activate the newest
                return self.activate(source, self._latest_version(source), by=SHIPPED_BY)
            return self.get(source, int(current.version))
        content = load_default(source, self.defaults_dir)
        if content is None:
            raise UnknownSource(source)
        try:
            with self._statement_guard():
                self._insert_version(
                    source, 1, content, f"shipped defaults {source}.json", SHIPPED_BY
                )
                self._insert_activation(source, 1, None, "defaults", SHIPPED_BY)
        except IntegrityError:
            pass  # another process stored the defaults first
        return self.get(source, self.active_version(source))

    def create(
        self,
        source: str,
        content: MappingContent,
        note: str | None = None,
        created_by: str = "unknown",
        activate: bool = False,
    ) -> MappingSet:
        """Store a new version (next number); shipped defaults stay version 1.

        A source with no active version gets the new one activated whatever ``activate``
        says, since its messages could not be read otherwise.
        """
        check_source_name(source)
        if not self._has_versions(source) and load_default(source, self.defaults_dir):
            self.ensure_defaults(source)
        for _ in range(_CREATE_ATTEMPTS):
            version = self._latest_version(source) + 1
            try:
                with self._statement_guard():
                    self._insert_version(source, version, content, note, created_by)
                break
            except IntegrityError:
                continue  # a concurrent create took this number; take the next one
        else:
            raise RuntimeError(f"could not allocate a mapping version number for {source!r}")
        if activate or self._current_activation(source) is None:
            return self.activate(source, version, by=created_by)
        return self.get(source, version)

    def activate(self, source: str, version: int, by: str = "unknown") -> MappingSet:
        """Make ``version`` the one messages are read through; a no-op if it already is."""
        mapping_set = self.get(source, version)
        current = self._current_activation(source)
        if current is not None and int(current.version) == version:
            return mapping_set
        previous_id = None if current is None else current.id
        self._insert_activation(source, version, previous_id, "activate", by)
        return mapping_set

    def rollback(self, source: str, by: str = "unknown") -> MappingSet:
        """Re-activate the version that was active before the current one.

        Rolling back again keeps walking back through earlier activations.
        """
        self._ensure_known(source)
        current = self._current_activation(source)
        if current is None or current.previous_id is None:
            raise NothingToRollBack(source, 0 if current is None else int(current.version))
        target = self.session.execute(
            select(mapping_activations).where(mapping_activations.c.id == current.previous_id)
        ).one()
        self._insert_activation(source, int(target.version), target.previous_id, "rollback", by)
        return self.get(source, int(target.version))

    def record_unmapped(
        self, source: str, table: str, code: str, message_id: int | None = None
    ) -> None:
        """Count a code a message carried that the mapping set did not translate.

        One atomic upsert, so concurrent workers never lose a count or collide on insert.
        """
        now = _utcnow()
        values: dict[str, Any] = {
            "source": source[:SOURCE_LENGTH],
            "code_table": table[:64],
            "code": code[:CODE_LENGTH],
            "first_seen": now,
            "last_seen": now,
            "count": 1,
            "last_message_id": message_id,
        }
        dialect = self.session.get_bind().dialect.name
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        if dialect not in ("postgresql", "sqlite"):
            raise NotImplementedError(f"record_unmapped has no upsert for {dialect!r}")
        stmt = insert(mapping_unmapped_codes).values(**values)
        count = mapping_unmapped_codes.c.count
        updates: dict[str, Any] = {"count": count + 1, "last_seen": now}
        if message_id is not None:
            updates["last_message_id"] = message_id
        keys = ["source", "code_table", "code"]
        self.session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))

    def unmapped(self, source: str | None = None) -> list[UnmappedEntry]:
        """Codes seen but not translated by the source's active version, most frequent first.

        A code mapped by a later version drops out as soon as that version is active, and
        comes back if a rollback un-maps it again; the counters are kept either way.
        """
        query = select(mapping_unmapped_codes)
        if source is not None:
            query = query.where(mapping_unmapped_codes.c.source == source)
        rows = self.session.execute(query).all()
        active: dict[str, MappingSet | None] = {}
        report: list[UnmappedEntry] = []
        for r in rows:
            if r.source not in active:
                try:
                    active[r.source] = self.active(r.source)
                except (UnknownSource, ValueError):
                    active[r.source] = None
            mapping_set = active[r.source]
            if mapping_set is not None and is_mapped(mapping_set, r.code_table, r.code):
                continue
            report.append(
                UnmappedEntry(
                    source=r.source,
                    table=r.code_table,
                    code=r.code,
                    count=int(r._mapping["count"]),
                    first_seen=_aware(r.first_seen),
                    last_seen=_aware(r.last_seen),
                    last_message_id=r.last_message_id,
                    checked_against=None if mapping_set is None else mapping_set.label,
                )
            )
        report.sort(key=lambda e: (e.source, -e.count, e.table, e.code))
        return report

    # -- internals -------------------------------------------------------------------------

    def _statement_guard(self) -> AbstractContextManager[Any]:
        """Undo only the guarded inserts if they hit a unique key, keeping the caller's work.

        PostgreSQL aborts the whole transaction on an error, hence the savepoint. SQLite undoes
        just the failed statement, and pysqlite (Python 3.11) turns a SAVEPOINT issued before
        any write into its own transaction that RELEASE commits, so no savepoint there.
        """
        if self.session.get_bind().dialect.name == "sqlite":
            return nullcontext()
        return self.session.begin_nested()

    def _current_activation(self, source: str) -> Any:
        return self.session.execute(
            select(
                mapping_activations.c.id,
                mapping_activations.c.version,
                mapping_activations.c.previous_id,
            )
            .where(mapping_activations.c.source == source)
            .order_by(mapping_activations.c.id.desc())
            .limit(1)
        ).one_or_none()

    def _has_versions(self, source: str) -> bool:
        return self._latest_version(source) > 0

    def _latest_version(self, source: str) -> int:
        latest = self.session.scalar(
            select(func.max(mapping_versions.c.version)).where(mapping_versions.c.source == source)
        )
        return int(latest or 0)

    def _ensure_known(self, source: str) -> None:
        if self._current_activation(source) is None:
            self.ensure_defaults(source)

    def _content(self, source: str, version: int) -> Any:
        return self.session.scalar(
            select(mapping_versions.c.content).where(
                mapping_versions.c.source == source, mapping_versions.c.version == version
            )
        )

    def _insert_version(
        self, source: str, version: int, content: MappingContent, note: str | None, by: str
    ) -> None:
        self.session.execute(
            mapping_versions.insert().values(
                source=source,
                version=version,
                content=content.model_dump(mode="json"),
                note=note,
                created_at=_utcnow(),
                created_by=by,
            )
        )

    def _insert_activation(
        self, source: str, version: int, previous_id: int | None, kind: str, by: str
    ) -> None:
        self.session.execute(
            mapping_activations.insert().values(
                source=source,
                version=version,
                previous_id=previous_id,
                kind=kind,
                activated_at=_utcnow(),
                activated_by=by,
            )
        )
