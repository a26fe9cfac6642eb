"""Group commit for the write-ahead audit (ADR 0008, ADR 0015): concurrent callers share one transaction.

Every hook answer with cards commits its audit records before it is sent. Under concurrency (8 clients,
up to 40 hook threads per worker, every worker on one SQLite file) each of those commits took SQLite's
one write lock on its own, and the callers queued on it: in sqlite3's busy handler, which sleeps with a
back-off, across processes, and on the GIL between the many short calls of a transaction. Here the
callers that arrive while a commit is in progress wait for it and are then written together, by one of
them, in one transaction.

Leader and followers, no writer thread: the caller that finds no commit in progress writes the records
of every caller waiting at that moment (its own included) and wakes them; a caller that arrives during a
commit joins the next group and either becomes its leader once the commit in progress ends or finds its
records already committed. A separate writer thread would add a thread hand-off (a GIL hand-over and a
wake-up) to every answer for the same batching.

The guarantee is unchanged: ``commit`` returns only after a transaction holding the caller's records has
committed, and raises the commit's error to every caller of a failed group, each of which then spools its
own records (``Store.record_issued``). Written by hand: about 60 lines on ``threading.Condition``; SQLite
and SQLAlchemy offer no group commit across connections, and a queue library would still need the
"wait for my transaction" part.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class _Group(Generic[Item]):
    __slots__ = ("items", "done", "error")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[Item]):
    """``commit(items)`` writes ``items`` with those of the callers waiting at the same time, in one call of
    ``write(all_items)``; returns once that call returned, raises what it raised."""

    def __init__(self, write: Callable[[list[Item]], None], max_items: int = 500) -> None:
        self._write = write
        self._max_items = max_items  # a group holds at most this many items (one transaction stays short)
        self._condition = threading.Condition()
        self._open: _Group[Item] | None = None  # the group new callers join; committed by its first free caller
        self._committing = False
        self.groups = 0  # transactions written (for tests and the benchmark)
        self.items = 0

    def commit(self, items: list[Item]) -> None:
        with self._condition:
            group = self._open
            if group is None or len(group.items) >= self._max_items:
                group = self._open = _Group()
            group.items.extend(items)
            while self._committing and not group.done:
                self._condition.wait()
            if group.done:  # another caller led this group
                if group.error is not None:
                    raise group.error
                return
            # This caller leads: nobody else is committing and its group is not done.
            if self._open is group:
                self._open = None
            self._committing = True
        try:
            self._write(group.items)
        except BaseException as exc:
            group.error = exc
            raise
        finally:
            with self._condition:
                self._committing = False
                group.done = True
                self.groups += 1
                self.items += len(group.items)
                self._condition.notify_all()
