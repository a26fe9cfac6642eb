"""Group commit of the write-ahead audit (ADR 0015): concurrent hook answers share one transaction, and each
answer still waits for the commit of its own records (ADR 0008); a failed commit spools every caller's records."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from cds.store import Store
from cds.store.database import engine_url
from cds.store.group_commit import GroupCommit
from cds.store.models import CardAudit, CardRule
from cds.store.records import AuditRecord

CALLERS = 8


def record(n: int = 0) -> AuditRecord:
    return AuditRecord(
        card_uuid=str(uuid.uuid4()),
        service_id="calciphylaxis-risk",
        hook="patient-view",
        hook_instance=str(uuid.uuid4()),
        ruleset_version="test",
        indicator="warning",
        rule_ids=(f"rule-{n}",),
        suggestion_uuids=(),
        patient_hash="0" * 64,
        issued_at=datetime(2026, 12, 3, tzinfo=UTC),
    )


def run_together(target, count: int) -> list[BaseException | None]:
    """``target(i)`` in ``count`` threads; what each raised (None when it returned)."""
    outcomes: list[BaseException | None] = [None] * count

    def call(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # the test inspects it
            outcomes[index] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    return outcomes


class BlockedFirstWrite:
    """A write whose first call waits until every other caller is waiting behind it."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.committed: set[int] = set()
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, items: list[int]) -> None:
        if not self.calls:
            assert self.release.wait(timeout=10)
        self.calls.append(list(items))
        if self.fail and len(self.calls) == 2:
            raise RuntimeError("disk I/O error")
        self.committed.update(items)


def test_callers_that_arrive_during_a_commit_share_the_next_one_and_return_only_once_it_committed():
    write = BlockedFirstWrite()
    commits = GroupCommit(write)
    seen_at_return: dict[int, bool] = {}

    def caller(index: int) -> None:
        commits.commit([index])
        seen_at_return[index] = index in write.committed  # committed before the caller goes on to answer

    leader = threading.Thread(target=caller, args=(0,))
    leader.start()
    while not commits._committing:  # the leader is inside its (blocked) write
        threading.Event().wait(0.001)
    followers = [threading.Thread(target=caller, args=(i,)) for i in range(1, CALLERS)]
    for thread in followers:
        thread.start()
    while len(commits._open.items if commits._open else ()) < CALLERS - 1:
        threading.Event().wait(0.001)
    write.release.set()
    for thread in (leader, *followers):
        thread.join(timeout=10)
    assert len(write.calls) == 2 and write.calls[0] == [0]  # two transactions for 8 callers
    assert sorted(write.calls[1]) == list(range(1, CALLERS))
    assert seen_at_return == dict.fromkeys(range(CALLERS), True)
    assert (commits.groups, commits.items) == (2, CALLERS)


def test_a_failed_group_commit_raises_to_every_caller_in_it_and_the_next_group_is_written():
    write = BlockedFirstWrite(fail=True)
    commits = GroupCommit(write)
    first = threading.Thread(target=commits.commit, args=([0],))
    first.start()
    while not commits._committing:
        threading.Event().wait(0.001)
    outcomes: dict[int, BaseException | None] = {}

    def caller(index: int) -> None:
        try:
            commits.commit([index])
            outcomes[index] = None
        except RuntimeError as exc:
            outcomes[index] = exc

    failing = [threading.Thread(target=caller, args=(i,)) for i in (1, 2, 3)]
    for thread in failing:
        thread.start()
    while len(commits._open.items if commits._open else ()) < 3:
        threading.Event().wait(0.001)
    write.release.set()
    for thread in (first, *failing):
        thread.join(timeout=10)
    assert {i: type(e).__name__ for i, e in outcomes.items()} == dict.fromkeys((1, 2, 3), "RuntimeError")
    commits.commit([4])  # the failure is not sticky
    assert write.committed == {0, 4}


@pytest.mark.parametrize("follow_on", [0, 3])
def test_groups_that_form_during_a_commit_are_written_in_turn_or_handed_to_one_of_their_callers(follow_on: int):
    write = BlockedFirstWrite()
    commits = GroupCommit(write, max_follow_on=follow_on)
    writers: list[str] = []
    returned: dict[int, bool] = {}

    def recording(items: list[int]) -> None:
        write(items)
        writers.append(threading.current_thread().name)

    commits._write = recording

    def caller(index: int) -> None:
        commits.commit([index])
        returned[index] = index in write.committed

    threads = [threading.Thread(target=caller, args=(i,), name=f"caller-{i}") for i in range(CALLERS)]
    threads[0].start()
    while not commits._committing:
        threading.Event().wait(0.001)
    for thread in threads[1:]:
        thread.start()
    while len(commits._open.items if commits._open else ()) < CALLERS - 1:
        threading.Event().wait(0.001)
    write.release.set()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert returned == dict.fromkeys(range(CALLERS), True)
    assert len(write.calls) == 2 and sorted(write.calls[1]) == list(range(1, CALLERS))
    if follow_on:
        assert writers == ["caller-0", "caller-0"]  # the first caller wrote the group that formed meanwhile
    else:
        assert writers[0] == "caller-0" and writers[1] != "caller-0"  # handed over to one of its own callers
    assert not commits._committing and commits._open is None


def audit_rows(url: str) -> tuple[set[str], int]:
    engine = create_engine(engine_url(url))
    try:
        with engine.connect() as connection:
            cards = set(connection.scalars(select(CardAudit.card_uuid)))
            rules = len(list(connection.execute(select(CardRule.card_uuid))))
        return cards, rules
    finally:
        engine.dispose()


def test_every_concurrent_callers_records_are_in_the_database_when_its_record_issued_returns(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'cds.sqlite3'}"
    store = Store.open(url, b"k" * 32, spool_dir=tmp_path / "spool")
    mine = [[record(i), record(i)] for i in range(CALLERS * 4)]
    visible: dict[int, bool] = {}
    try:

        def caller(index: int) -> None:
            store.record_issued(mine[index])
            cards, _ = audit_rows(url)  # another connection: what another worker would see
            visible[index] = {r.card_uuid for r in mine[index]} <= cards

        assert run_together(caller, len(mine)) == [None] * len(mine)
        assert visible == dict.fromkeys(range(len(mine)), True)
        cards, rules = audit_rows(url)
        assert len(cards) == rules == 2 * len(mine)
        assert store.audit_commits.items == 2 * len(mine)
        assert store.audit_commits.groups <= len(mine)
        assert store.audit_failures == 0 and store.pending_audit_records == 0
    finally:
        store.close()


@pytest.mark.parametrize("failure", ["database-gone", "write-error"])
def test_a_failed_group_commit_spools_every_callers_records_and_each_still_returns(tmp_path: Path, failure: str):
    path = tmp_path / "db" / "cds.sqlite3"
    url = f"sqlite:///{path}"
    store = Store.open(url, b"k" * 32, spool_dir=tmp_path / "spool")
    mine = [[record(i)] for i in range(CALLERS)]
    try:
        if failure == "database-gone":
            parked = tmp_path / "parked"
            path.parent.rename(parked)
            path.mkdir(parents=True)  # a directory where the file was: no write can succeed
        else:

            def broken(records: list[AuditRecord]) -> None:
                raise OSError("disk I/O error")

            store.audit_commits._write = broken
            store._write_audit = broken  # type: ignore[method-assign]  # the spool's replay fails too
        assert run_together(lambda i: store.record_issued(mine[i]), CALLERS) == [None] * CALLERS
        assert store.audit_failures >= CALLERS  # every caller saw its commit fail and spooled its own records
        assert store.spool is not None and store.spool.count() == CALLERS
        assert store.pending_audit_records == CALLERS
        # Once the database takes writes again, the spool moves every record in.
        if failure == "database-gone":
            path.rmdir()
            path.parent.rmdir()
            parked.rename(path.parent)
        else:
            del store._write_audit
        # The service's own writer retries the spool in the background; a loaded machine can refuse one replay
        # (seen once in a full run, OperationalError), so the test retries within a bound as that writer would.
        settle = time.monotonic() + 20
        while not store.flush() and time.monotonic() < settle:
            time.sleep(0.2)
        assert store.flush() is True
        cards, _ = audit_rows(url)
        assert {r.card_uuid for records in mine for r in records} <= cards
    finally:
        store.close()


def test_a_group_that_fills_during_a_commit_is_still_written_after_it():
    # max_items=2: callers 1 and 2 fill the group waiting behind caller 0's commit, 3 and 4 start the next one.
    release = threading.Event()
    calls: list[list[int]] = []

    def write(items: list[int]) -> None:
        calls.append(sorted(items))
        if len(calls) == 1:
            release.wait(10)

    commits = GroupCommit(write, max_items=2)
    threads = [threading.Thread(target=commits.commit, args=([i],), daemon=True) for i in range(5)]
    threads[0].start()
    while not commits._committing:
        threading.Event().wait(0.001)
    for thread in threads[1:]:
        thread.start()
    threading.Event().wait(0.3)  # callers 1-4 queue behind the blocked commit (any later one must return too)
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), calls  # no caller left waiting for a lost group
    assert calls[0] == [0] and sorted(sum(calls[1:], [])) == [1, 2, 3, 4] and all(len(c) <= 2 for c in calls)
    assert not commits._committing and commits._open is None
