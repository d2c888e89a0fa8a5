"""The message store on SQLite and PostgreSQL: group commit, resends, retries, parking, pruning."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, func, select, update

from hub import message_store
from hub.message_store import INBOUND, MessageFilter, NewMessage, RetryPolicy, utcnow
from hub.tables import messages


def _msg(control_id: str, body: bytes | None = None, **kw: object) -> NewMessage:
    default = f"MSH|^~\\&|GMED|CLINIC|||||SIU^S12|{control_id}|P|2.5".encode()
    raw = body if body is not None else default
    fields: dict[str, object] = {
        "channel": "gmed",
        "direction": INBOUND,
        "raw": raw,
        "message_type": "SIU^S12",
        "control_id": control_id,
        "sender": "GMED|CLINIC",
        "ack": f"ACK for {control_id}".encode(),
    }
    fields.update(kw)
    return NewMessage(**fields)  # type: ignore[arg-type]


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def test_batch_stores_each_message_once_with_its_ack(engine: Engine) -> None:
    stored = message_store.store_batch(engine, [_msg("1"), _msg("2"), _msg("3")])
    assert [s.duplicate for s in stored] == [False, False, False]
    assert len({s.id for s in stored}) == 3
    with engine.connect() as conn:
        row = message_store.get(conn, stored[1].id)
    assert row.status == "received"
    assert row.ack == b"ACK for 2"
    assert row.raw.endswith(b"|2|P|2.5")


def test_byte_identical_resend_returns_first_ack_and_no_second_row(engine: Engine) -> None:
    first = message_store.store_batch(engine, [_msg("42")])[0]
    again = message_store.store_batch(engine, [_msg("42", ack=b"a different ack")])[0]
    assert again.duplicate and again.id == first.id
    assert again.ack == b"ACK for 42"
    assert _count(engine) == 1


def test_resend_inside_one_batch_is_also_a_duplicate(engine: Engine) -> None:
    stored = message_store.store_batch(engine, [_msg("7"), _msg("7")])
    assert stored[0].duplicate is False
    assert stored[1].duplicate is True and stored[1].id == stored[0].id
    assert _count(engine) == 1


def test_same_control_id_with_other_bytes_is_a_new_message(engine: Engine) -> None:
    a = message_store.store_batch(engine, [_msg("9", body=b"MSH|^~\\&|A|B|||||SIU^S12|9|P|2.5")])
    b = message_store.store_batch(engine, [_msg("9", body=b"MSH|^~\\&|A|B|||||SIU^S15|9|P|2.5")])
    assert not b[0].duplicate and a[0].id != b[0].id
    assert _count(engine) == 2


def test_rejected_messages_are_stored_finished_with_their_reason(engine: Engine) -> None:
    stored = message_store.store_batch(
        engine, [_msg("x", body=b"garbage", rejection="AR 100: no MSH")]
    )[0]
    with engine.connect() as conn:
        row = message_store.get(conn, stored.id)
    assert row.status == "rejected" and row.last_error == "AR 100: no MSH"
    assert message_store.waiting_ids(engine) == []


def test_claim_is_exclusive_and_counts_attempts(engine: Engine) -> None:
    (stored,) = message_store.store_batch(engine, [_msg("c1")])
    with engine.begin() as conn:
        row = message_store.claim(conn, stored.id)
        assert row is not None and row.attempts == 1
        message_store.finish(conn, stored.id, "processed", mapping_version="gmed@v1")
    with engine.begin() as conn:
        assert message_store.claim(conn, stored.id) is None


def test_failures_back_off_then_park(engine: Engine) -> None:
    (stored,) = message_store.store_batch(engine, [_msg("f1")])
    kw = {"permanent": False, "policy": RetryPolicy(3, 10.0, 60.0)}
    statuses = []
    for _ in range(3):
        statuses.append(message_store.fail(engine, stored.id, "db down", **kw))  # type: ignore[arg-type]
    assert statuses == ["retrying", "retrying", "parked"]
    with engine.connect() as conn:
        row = message_store.get(conn, stored.id)
    assert row.attempts == 3 and row.last_error == "db down" and row.finished_at is not None


def test_backoff_doubles_up_to_the_ceiling() -> None:
    assert [message_store.backoff_seconds(n, 2.0, 10.0) for n in (1, 2, 3, 4)] == [2, 4, 8, 10]


def test_due_retries_come_back_and_future_ones_wait(engine: Engine) -> None:
    due, later = message_store.store_batch(engine, [_msg("d1"), _msg("d2")])
    kw = {"permanent": False, "policy": RetryPolicy(5, 1.0, 60.0)}
    message_store.fail(engine, due.id, "boom", **kw)  # type: ignore[arg-type]
    message_store.fail(engine, later.id, "boom", **kw)  # type: ignore[arg-type]
    with engine.begin() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.id == due.id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    assert message_store.due_retries(engine) == [(due.id, INBOUND)]
    with engine.connect() as conn:
        assert message_store.get(conn, due.id).status == "received"
        assert message_store.get(conn, later.id).status == "retrying"


def test_permanent_failure_parks_at_once_and_replay_by_filter(engine: Engine) -> None:
    a, b, c = message_store.store_batch(engine, [_msg("p1"), _msg("p2"), _msg("p3")])
    kw = {"policy": RetryPolicy(5, 1.0, 60.0)}
    message_store.fail(engine, a.id, "unmapped status code 'X'", permanent=True, **kw)  # type: ignore[arg-type]
    message_store.fail(engine, b.id, "unmapped status code 'Y'", permanent=True, **kw)  # type: ignore[arg-type]
    parked = message_store.matching_ids(engine, MessageFilter(status="parked"))
    assert parked == [a.id, b.id]
    only_x = message_store.matching_ids(
        engine, MessageFilter(status="parked", error_contains="'X'")
    )
    assert only_x == [a.id]
    assert message_store.replay(engine, parked) == [(a.id, INBOUND), (b.id, INBOUND)]
    with engine.connect() as conn:
        row = message_store.get(conn, a.id)
    assert row.status == "received" and row.attempts == 0
    assert c.id in [i for i, _ in message_store.waiting_ids(engine)]


def test_prune_removes_only_old_finished_messages(engine: Engine) -> None:
    old, recent, parked = message_store.store_batch(engine, [_msg("o"), _msg("r"), _msg("k")])
    long_ago = utcnow() - timedelta(days=40)
    with engine.begin() as conn:
        message_store.finish(conn, old.id, "processed")
        message_store.finish(conn, recent.id, "processed")
        conn.execute(update(messages).where(messages.c.id == old.id).values(finished_at=long_ago))
    message_store.fail(engine, parked.id, "bad", permanent=True, policy=RetryPolicy(1))
    with engine.begin() as conn:
        conn.execute(
            update(messages).where(messages.c.id == parked.id).values(finished_at=long_ago)
        )
    assert message_store.prune(engine, utcnow() - timedelta(days=30)) == 1
    with engine.connect() as conn:
        assert message_store.get(conn, old.id) is None
        assert message_store.get(conn, recent.id) is not None
        assert message_store.get(conn, parked.id).status == "parked"


def test_list_filters_and_counts(engine: Engine) -> None:
    message_store.store_batch(engine, [_msg("l1"), _msg("l2", message_type="ADT^A04")])
    total, rows = message_store.list_messages(engine, MessageFilter(message_type="ADT^A04"))
    assert total == 1 and rows[0]["control_id"] == "l2" and "raw" not in rows[0]
    assert message_store.counts_by_status(engine) == {"received": 2}
