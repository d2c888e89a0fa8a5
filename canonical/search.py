"""FHIR search over the canonical tables.

Each parameter becomes a condition on an indexed column of ``canonical_resources`` or an
``IN`` sub-select on ``canonical_identifiers`` / ``canonical_search_index``, so every search is
an index lookup on SQLite and PostgreSQL alike. Repeated parameters AND together, comma
separated values OR together (FHIR semantics). Parameters we do not know are an error rather
than silently ignored, so a client never mistakes an unfiltered result for a filtered one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select
from sqlalchemy.orm import Session

from canonical.model import SUPPORTED_TYPES
from canonical.tables import identifiers, resources, search_index

DEFAULT_COUNT = 50
MAX_COUNT = 500


class SearchError(ValueError):
    """A search the server cannot run as asked (unknown parameter, bad value); HTTP 400."""


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One supported search parameter, also listed in the CapabilityStatement."""

    name: str
    type: str  # FHIR SearchParamType: token | reference | date
    documentation: str
    targets: tuple[str, ...] = ()
    index_param: str | None = None  # the search_index param it reads, for references/tokens


_COMMON = (
    SearchParam("_id", "token", "Logical id of the resource"),
    SearchParam(
        "identifier",
        "token",
        "Any identifier of any source: value, system|value, |value or system|",
    ),
    SearchParam("_lastUpdated", "date", "When the resource last changed in Harmony"),
)
_ACTOR_TARGETS = ("Patient", "Practitioner", "PractitionerRole", "Location", "Device")


def _token(name: str, what: str) -> SearchParam:
    return SearchParam(name, "token", f"{what} (system|code or code)", (), name)


SEARCH_PARAMS: dict[str, tuple[SearchParam, ...]] = {
    "Schedule": (
        *_COMMON,
        SearchParam(
            "actor", "reference", "Who or what the schedule is for", _ACTOR_TARGETS, "actor"
        ),
        _token("service-type", "Service type"),
    ),
    "Slot": (
        *_COMMON,
        SearchParam("schedule", "reference", "The Schedule the slot belongs to", ("Schedule",)),
        SearchParam("status", "token", "busy | free | busy-unavailable | busy-tentative"),
        SearchParam("start", "date", "Slot start (UTC), with eq/ne/gt/lt/ge/le/sa/eb prefixes"),
        _token("service-type", "Service type"),
    ),
    "Appointment": (
        *_COMMON,
        SearchParam("date", "date", "Appointment start, with eq/ne/gt/lt/ge/le/sa/eb prefixes"),
        SearchParam("status", "token", "Appointment status"),
        SearchParam("actor", "reference", "Any participant", _ACTOR_TARGETS, "actor"),
        SearchParam("patient", "reference", "A patient participant", ("Patient",), "actor"),
        SearchParam(
            "practitioner", "reference", "A practitioner participant", ("Practitioner",), "actor"
        ),
        SearchParam("location", "reference", "A location participant", ("Location",), "actor"),
        SearchParam("slot", "reference", "A slot the appointment fills", ("Slot",), "slot"),
        _token("service-type", "Service type"),
        _token("appointment-type", "Appointment type"),
    ),
    "Patient": _COMMON,
    "Practitioner": _COMMON,
    "PractitionerRole": (
        *_COMMON,
        SearchParam(
            "practitioner", "reference", "Who fills the role", ("Practitioner",), "practitioner"
        ),
    ),
    "Location": (*_COMMON, SearchParam("status", "token", "active | suspended | inactive")),
    "Device": (*_COMMON, SearchParam("status", "token", "active | inactive | entered-in-error")),
}
assert set(SEARCH_PARAMS) == set(SUPPORTED_TYPES)

RESULT_PARAMS = frozenset({"_count", "_offset", "_summary", "_sort", "_total"})
IGNORED_PARAMS = frozenset({"_format", "_pretty"})
_TIMED = frozenset({"Slot", "Appointment"})
_SORTS = {
    "_id": resources.c.id,
    "_lastUpdated": resources.c.last_updated,
    "date": resources.c.start,
    "start": resources.c.start,
}
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
_DATE_RE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(slots=True)
class SearchQuery:
    resource_type: str
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    summary_count: bool = False
    order: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    resources: list[dict[str, Any]]
    count: int
    offset: int


def search(
    session: Session,
    resource_type: str,
    params: Iterable[tuple[str, str]],
    default_tz: tzinfo = UTC,
) -> SearchResult:
    """Run a FHIR search; ``params`` are the query's (name, value) pairs, repeats allowed."""
    return run(session, parse(resource_type, params, default_tz))


def parse(
    resource_type: str, params: Iterable[tuple[str, str]], default_tz: tzinfo = UTC
) -> SearchQuery:
    """Turn query parameters into conditions; SearchError names what is wrong."""
    known = {p.name: p for p in SEARCH_PARAMS.get(resource_type, ())}
    if not known:
        raise SearchError(f"searching {resource_type} is not supported")
    query = SearchQuery(resource_type, conditions=[resources.c.resource_type == resource_type])
    for raw_name, value in params:
        head, dot, chained = raw_name.partition(".")
        name, _, modifier = head.partition(":")
        chain = chained if dot else None
        if name in IGNORED_PARAMS:
            continue
        if name in RESULT_PARAMS:
            _result_param(query, name, value)
            continue
        param = known.get(name)
        if param is None:
            raise SearchError(
                f"unknown search parameter {raw_name!r} for {resource_type}; supported: "
                + ", ".join(sorted([*known, *RESULT_PARAMS]))
            )
        if value == "":
            raise SearchError(f"search parameter {raw_name!r} has no value")
        condition = _condition(resource_type, param, modifier, chain, value, default_tz)
        query.conditions.append(condition)
    if not query.order:
        query.order = [resources.c.start] if resource_type in _TIMED else []
    query.order.append(resources.c.pk)
    return query


def run(session: Session, query: SearchQuery) -> SearchResult:
    """Count the matches and fetch one page of them."""
    where = and_(*query.conditions)
    total = int(session.execute(select(func.count()).where(where)).scalar_one())
    found: list[dict[str, Any]] = []
    if not query.summary_count and query.count > 0 and query.offset < total:
        page = (
            select(resources.c.resource)
            .where(where)
            .order_by(*query.order)
            .limit(query.count)
            .offset(query.offset)
        )
        found = [r for (r,) in session.execute(page)]
    return SearchResult(total=total, resources=found, count=query.count, offset=query.offset)


def _result_param(query: SearchQuery, name: str, value: str) -> None:
    if name == "_count":
        query.count = min(_non_negative(name, value), MAX_COUNT)
    elif name == "_offset":
        query.offset = _non_negative(name, value)
    elif name == "_summary":
        if value not in ("count", "false"):
            raise SearchError(f"_summary={value} is not supported (use count or false)")
        query.summary_count = value == "count"
    elif name == "_sort":
        for key in value.split(","):
            descending, bare = key.startswith("-"), key.lstrip("-")
            column = _SORTS.get(bare)
            if column is None or (bare in ("date", "start") and query.resource_type not in _TIMED):
                raise SearchError(f"cannot sort {query.resource_type} by {key!r}")
            query.order.append(column.desc() if descending else column.asc())
    # _total: we always count exactly, whatever the client asks.


def _non_negative(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise SearchError(f"{name} must be a non-negative integer, not {value!r}")
    return number


def split_values(value: str) -> list[str]:
    """Comma-separated alternatives, honouring FHIR's ``\\,`` escape."""
    parts = re.split(r"(?<!\\),", value)
    return [p.replace("\\,", ",") for p in parts]


def _condition(
    rtype: str,
    param: SearchParam,
    modifier: str,
    chain: str | None,
    value: str,
    default_tz: tzinfo,
) -> ColumnElement[bool]:
    if chain is not None and param.type != "reference":
        raise SearchError(f"{param.name} is not a reference; it cannot be chained")
    if param.type == "date":
        if modifier:
            raise SearchError(f"modifier :{modifier} is not supported on {param.name}")
        column = resources.c.last_updated if param.name == "_lastUpdated" else resources.c.start
        return or_(*(_date_condition(column, v, default_tz) for v in split_values(value)))
    if param.type == "reference":
        return _reference_condition(rtype, param, modifier, chain, split_values(value))
    if modifier:
        raise SearchError(f"modifier :{modifier} is not supported on {param.name}")
    values = split_values(value)
    if param.name == "_id":
        return resources.c.id.in_(values)
    if param.name == "status":
        return resources.c.status.in_([v.rpartition("|")[2] for v in values])
    if param.name == "identifier":
        return resources.c.pk.in_(_identifier_pks(rtype, values))
    assert param.index_param is not None
    matches = [_token_match(search_index.c.system, search_index.c.value, v) for v in values]
    return resources.c.pk.in_(
        select(search_index.c.resource_pk).where(
            search_index.c.resource_type == rtype,
            search_index.c.param == param.index_param,
            or_(*matches),
        )
    )


def _token_match(system_col: Any, value_col: Any, token: str) -> ColumnElement[bool]:
    if "|" not in token:
        return value_col == token  # type: ignore[no-any-return]
    system, _, code = token.partition("|")
    if not code:
        return system_col == system  # type: ignore[no-any-return]
    return and_(system_col == system, value_col == code)


def _identifier_pks(rtype: str, values: list[str]) -> Any:
    return select(identifiers.c.resource_pk).where(
        identifiers.c.resource_type == rtype,
        or_(*(_token_match(identifiers.c.system, identifiers.c.value, v) for v in values)),
    )


def _reference_condition(
    rtype: str, param: SearchParam, modifier: str, chain: str | None, values: list[str]
) -> ColumnElement[bool]:
    targets = param.targets
    if modifier:
        if modifier not in targets:
            raise SearchError(
                f"{param.name}:{modifier} is not supported; {param.name} may point at "
                + ", ".join(targets)
            )
        targets = (modifier,)
    if chain is not None:
        if chain != "identifier":
            raise SearchError(f"only .identifier chains are supported, not {param.name}.{chain}")
        if len(targets) != 1:
            raise SearchError(
                f"{param.name}.identifier needs a type, e.g. {param.name}:{targets[0]}.identifier"
            )
        target_ids = (
            select(resources.c.id)
            .join(identifiers, identifiers.c.resource_pk == resources.c.pk)
            .where(
                identifiers.c.resource_type == targets[0],
                or_(*(_token_match(identifiers.c.system, identifiers.c.value, v) for v in values)),
            )
        )
        pairs: list[tuple[str | None, Any]] = [(targets[0], target_ids)]
    else:
        pairs = []
        for value in values:
            target_type, target_id = _parse_reference(param, value)
            # A type the parameter cannot point at is a valid search that matches nothing.
            if target_type is None or target_type in targets:
                pairs.append((target_type, target_id))
        if not pairs:
            return false()
    if param.index_param is None:  # Slot.schedule lives in a column
        return or_(*(_schedule_match(t, i) for t, i in pairs))
    matches = []
    for target_type, target_id in pairs:
        id_match = (
            search_index.c.value.in_(target_id)
            if not isinstance(target_id, str)
            else search_index.c.value == target_id
        )
        wanted = (target_type,) if target_type else targets
        matches.append(and_(id_match, search_index.c.system.in_(wanted)))
    return resources.c.pk.in_(
        select(search_index.c.resource_pk).where(
            search_index.c.resource_type == rtype,
            search_index.c.param == param.index_param,
            or_(*matches),
        )
    )


def _schedule_match(target_type: str | None, target_id: Any) -> ColumnElement[bool]:
    if isinstance(target_id, str):
        return resources.c.schedule_id == target_id  # type: ignore[no-any-return]
    return resources.c.schedule_id.in_(target_id)


def _parse_reference(param: SearchParam, value: str) -> tuple[str | None, str]:
    """``Type/id``, an absolute URL ending so, or a bare id."""
    parts = value.rstrip("/").split("/")
    if len(parts) == 1:
        return None, parts[0]
    if parts[-2] and parts[-2][0].isupper():
        return parts[-2], parts[-1]
    raise SearchError(f"{param.name}={value!r} is not a reference (use Type/id or id)")


def parse_date(value: str, default_tz: tzinfo = UTC) -> tuple[datetime, datetime]:
    """A FHIR date/dateTime search value as the UTC range [lower, upper) it stands for."""
    match = _DATE_RE.match(value)
    if match is None:
        raise SearchError(f"{value!r} is not a FHIR date or dateTime")
    g = match.groupdict()
    try:
        year = int(g["year"])
        month = int(g["month"] or 1)
        day = int(g["day"] or 1)
        lower = datetime(
            year,
            month,
            day,
            int(g["hour"] or 0),
            int(g["minute"] or 0),
            int(g["second"] or 0),
            int(g["fraction"][1:7].ljust(6, "0")) if g["fraction"] else 0,
        )
    except ValueError as exc:
        raise SearchError(f"{value!r} is not a valid date: {exc}") from exc
    if g["tz"]:
        offset = g["tz"]
        tz = UTC if offset == "Z" else datetime.strptime(offset, "%z").tzinfo
        lower = lower.replace(tzinfo=tz)
    else:
        lower = lower.replace(tzinfo=default_tz)
    if g["fraction"]:
        upper = lower + timedelta(microseconds=1)
    elif g["second"]:
        upper = lower + timedelta(seconds=1)
    elif g["minute"]:
        upper = lower + timedelta(minutes=1)
    elif g["day"]:
        upper = lower + timedelta(days=1)
    elif g["month"]:
        upper = lower.replace(year=year + (month == 12), month=month % 12 + 1)
    else:
        upper = lower.replace(year=year + 1)
    return lower.astimezone(UTC), upper.astimezone(UTC)


def _date_condition(column: Any, value: str, default_tz: tzinfo) -> ColumnElement[bool]:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    if value[:2] in _PREFIXES:
        value = value[2:]
    lower, upper = parse_date(value, default_tz)
    if prefix == "eq":
        return and_(column >= lower, column < upper)
    if prefix == "ne":
        return not_(and_(column >= lower, column < upper))
    if prefix in ("gt", "sa"):
        return column >= upper  # type: ignore[no-any-return]
    if prefix in ("lt", "eb"):
        return column < lower  # type: ignore[no-any-return]
    if prefix == "ge":
        return column >= lower  # type: ignore[no-any-return]
    return column < upper  # type: ignore[no-any-return]  # le
