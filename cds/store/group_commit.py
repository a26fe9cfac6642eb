"""Group commit for the write-ahead audit (ADR 0008, ADR 0015): concurrent callers share one transaction.

Every hook answer with cards commits its audit records before it is sent. Under concurrency (8 clients,
up to 40 hook threads per worker, every worker on one SQLite file) each of those commits took SQLite's
one write lock on its own, and the callers queued on it: in sqlite3's busy handler, which sleeps with a
back-off, across processes, and on the GIL between the many short calls of a transaction. Here the
callers that arrive while a commit is in progress wait for it and are then written together, in one
transaction.

Leader and followers, no writer thread: the caller that finds no commit in progress writes its records;
callers that arrive meanwhile join one open group, which that caller writes as soon as its own transaction
ended, then the group that formed during that one, and so on up to ``max_follow_on`` groups; beyond that
it hands the next group to one of that group's own callers, so no answer is held up by more than a few
transactions of others. Each group's callers are woken once their transaction ended, and only they. A
separate writer thread would add a thread hand-off (a GIL hand-over and a wake-up) to every answer.

The guarantee is unchanged: ``commit`` returns only after a transaction holding the caller's records has
committed, and raises the commit's error to every caller of a failed group, each of which then spools its
own records (``Store.record_issued``). Written by hand: about 70 lines on a lock and two
``threading.Event`` per group; SQLite and SQLAlchemy offer no group commit across connections, and a
queue library would still need the "wait for my transaction" part.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class _Group(Generic[Item]):
    __slots__ = ("items", "wake", "finished", "needs_leader", "error")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.wake = threading.Event()  # set when the group is written or is handed a leader
        self.finished = threading.Event()  # set when its transaction ended (committed or failed)
        self.needs_leader = False  # handed over: one of its own callers writes it
        self.error: BaseException | None = None


class GroupCommit(Generic[Item]):
    """``commit(items)`` writes ``items`` with those of the callers waiting at the same time, in one call of
    ``write(all_items)``; returns once that call returned, raises what it raised."""

    def __init__(self, write: Callable[[list[Item]], None], max_items: int = 500, max_follow_on: int = 3) -> None:
        self._write = write
        self._max_items = max_items  # a group holds at most this many items (one transaction stays short)
        # A leader writes at most this many groups after its own, so its own answer is not held up for long.
        self._max_follow_on = max_follow_on
        self._lock = threading.Lock()
        # Groups formed while a commit is in progress, oldest first; new callers join the newest until it is full.
        self._pending: deque[_Group[Item]] = deque()
        self._committing = False
        self.groups = 0  # transactions written (for tests and the benchmark)
        self.items = 0

    @property
    def _open(self) -> _Group[Item] | None:
        """The group new callers join (None when no group is waiting)."""
        return self._pending[-1] if self._pending else None

    def commit(self, items: list[Item]) -> None:
        with self._lock:
            leads = not self._committing
            if leads:
                self._committing = True
                group: _Group[Item] = _Group()
            elif self._pending and len(self._pending[-1].items) < self._max_items:
                group = self._pending[-1]
            else:  # a full group stays queued and is written in its turn
                group = _Group()
                self._pending.append(group)
            group.items.extend(items)
        while not leads:
            group.wake.wait()
            with self._lock:
                if not group.finished.is_set() and group.needs_leader:
                    group.needs_leader = False
                    leads = True  # handed over to this caller
            if not leads:
                group.finished.wait()
                if group.error is not None:
                    raise group.error
                return
        self._lead(group)
        if group.error is not None:
            raise group.error

    def _lead(self, group: _Group[Item]) -> None:
        """Write ``group``, then the groups that formed meanwhile (up to ``max_follow_on``), each one transaction;
        wake only each group's own callers. Beyond that, one caller of the next group takes over."""
        for written in range(self._max_follow_on + 1):
            try:
                self._write(group.items)
            except BaseException as exc:
                group.error = exc
            with self._lock:
                self.groups += 1
                self.items += len(group.items)
                following = self._pending.popleft() if self._pending else None
                if following is None:
                    self._committing = False
                elif written == self._max_follow_on:
                    following.needs_leader = True
            group.finished.set()
            group.wake.set()
            if following is None:
                return
            if following.needs_leader:
                following.wake.set()
                return
            group = following
