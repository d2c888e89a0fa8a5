"""The audit log: buffered writes that survive a normal stop, queries, client addresses, and
the API recording who touched patient or schedule data."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from api.app import create_app
from hub.audit import AuditEvent, AuditQuery, AuditWriter, TrustedProxies, audit_events, query_audit
from hub.settings import Settings
from hub.tokens import TokenService
from hub.users import create_user

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


def event(
    n: int, *, subject: str = "dr.lee", path: str = "/fhir/Slot", method: str = "GET"
) -> AuditEvent:
    return AuditEvent(
        at=T0 + timedelta(minutes=n),
        subject=subject,
        roles=["physician"],
        method=method,
        path=path,
        resource_type="Slot",
        resource_id=None,
        action="read" if method == "GET" else "write",
        status=200,
        client="10.0.0.5",
    )


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())


def test_close_writes_everything_still_buffered(engine: Engine) -> None:
    writer = AuditWriter(engine, interval=3600)  # the thread would not flush on its own
    for n in range(1200):
        writer.record(event(n))
    writer.close()
    assert count(engine) == 1200
    writer.close()  # idempotent
    assert count(engine) == 1200
    writer.record(event(0))  # the app served again after a shutdown: a new thread
    writer.close()
    assert count(engine) == 1201


def test_background_thread_flushes_without_being_asked(engine: Engine) -> None:
    writer = AuditWriter(engine, interval=0.05)
    writer.record(event(1))
    deadline = time.monotonic() + 5
    while count(engine) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert count(engine) == 1
    writer.close()


def test_queries_filter_and_page(engine: Engine) -> None:
    writer = AuditWriter(engine, interval=3600)
    for n in range(10):
        writer.record(event(n))
    writer.record(event(20, subject="nurse", path="/api/appointments", method="POST"))
    writer.record(event(21, subject="nurse", path="/fhir/Patient/p_1%"))
    writer.close()
    rows, total = query_audit(engine, AuditQuery(subject="nurse"))
    assert total == 2 and [r["path"] for r in rows] == ["/fhir/Patient/p_1%", "/api/appointments"]
    assert query_audit(engine, AuditQuery(action="write"))[1] == 1
    assert query_audit(engine, AuditQuery(path_prefix="/fhir/Patient/p_1%"))[1] == 1
    assert query_audit(engine, AuditQuery(path_prefix="/fhir/Patient/p%1"))[1] == 0  # % literal
    window = AuditQuery(since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=5))
    rows, total = query_audit(engine, window)
    assert total == 2 and {r["at"] for r in rows} == {T0 + timedelta(minutes=m) for m in (3, 4)}
    page, total = query_audit(engine, AuditQuery(limit=5, offset=10))
    assert total == 12 and len(page) == 2 and page[-1]["at"] == T0
    naive = query_audit(engine, AuditQuery(since=datetime(2025, 3, 1, 12, 9)))[1]
    assert naive == 3  # a naive time is taken as UTC


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    proxies = TrustedProxies(["10.1.0.0/16", "192.168.5.5"])
    assert proxies.client("203.0.113.9", "1.2.3.4") == ("203.0.113.9", None)
    assert proxies.client("10.1.2.3", "198.51.100.7") == ("198.51.100.7", "10.1.2.3")
    # the client's own (forged) entry is left of what the trusted proxies appended
    chain = "6.6.6.6, 198.51.100.7, 192.168.5.5"
    assert proxies.client("10.1.2.3", chain) == ("198.51.100.7", "10.1.2.3")
    assert TrustedProxies([]).client("10.1.2.3", "1.1.1.1") == ("10.1.2.3", None)


def test_api_requests_are_audited_and_queryable_by_admins(engine: Engine) -> None:
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        trusted_proxies=["127.0.0.1"],
        audit_flush_seconds=3600,
    )
    tokens = TokenService(settings.secret_key)
    staff = create_user(engine, "nurse.kim", roles={"staff"}, password="pw")
    admin = create_user(engine, "boss", roles={"admin"}, password="pw")
    as_staff = {"Authorization": f"Bearer {tokens.issue(staff).access_token}"}
    as_admin = {"Authorization": f"Bearer {tokens.issue(admin).access_token}"}
    app = create_app(settings, engine=engine)
    with TestClient(app, client=("127.0.0.1", 5000)) as client:
        assert client.get("/fhir/Slot?status=free", headers=as_staff).status_code == 200
        client.get("/fhir/Appointment/abc", headers=as_staff)
        client.get("/fhir/Slot")  # no credentials: recorded too, without a subject
        client.get("/fhir/metadata")  # public, names no data: not recorded
        client.get("/api/auth/me", headers=as_staff)  # not patient or schedule data
        client.get("/fhir/Slot", headers={**as_staff, "X-Forwarded-For": "198.51.100.7"})
        assert client.get("/api/audit", headers=as_staff).status_code == 403
        page = client.get("/api/audit", headers=as_admin, params={"subject": "nurse.kim"}).json()
        assert page["total"] == 3
        newest, found, search = page["items"]
        assert search["path"] == "/fhir/Slot?status=free" and search["action"] == "read"
        assert search["roles"] == ["staff"] and search["resource_type"] == "Slot"
        assert search["status"] == 200 and search["client"] == "127.0.0.1"
        assert found["resource_id"] == "abc" and found["status"] == 404
        assert newest["client"] == "198.51.100.7" and newest["via"] == "127.0.0.1"
        anonymous = client.get("/api/audit", headers=as_admin, params={"path_prefix": "/fhir"})
        assert anonymous.json()["total"] == 4
        assert [i["status"] for i in anonymous.json()["items"] if i["subject"] is None] == [401]
        paged = client.get("/api/audit", headers=as_admin, params={"limit": 3}).json()
        assert paged["next_offset"] == 3 and len(paged["items"]) == 3
        client.get("/fhir/Location", headers=as_staff)  # buffered when the app stops
    assert count(engine) == 5  # written on shutdown, without a query asking for it
