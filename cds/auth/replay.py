"""Replay protection: a ``jti`` is accepted once within its token's lifetime.

``MemoryReplayStore`` serves one process. With several workers or hosts, use
``SqlReplayStore`` on the shared database (``CDS_JWT_REPLAY_STORE=database``):
the primary key makes "first to insert wins" atomic across processes.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol

from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool


class ReplayStoreUnavailable(Exception):
    """The shared replay store cannot be reached; tokens cannot be checked for replay."""


class ReplayStore(Protocol):
    async def remember(self, iss: str, jti: str, expires_at: float, now: float) -> bool:
        """Record ``jti`` of ``iss`` until ``expires_at``; False if it was recorded and not expired at ``now``.

        Times are epoch seconds from the verifier's clock, so the store and the exp check agree.
        """


def replay_key(iss: str, jti: str) -> str:
    # Fixed length, whatever the client sends.
    return hashlib.sha256(f"{iss}\0{jti}".encode()).hexdigest()


class MemoryReplayStore:
    def __init__(self, max_entries: int = 1_000_000) -> None:
        self.max_entries = max_entries
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    async def remember(self, iss: str, jti: str, expires_at: float, now: float) -> bool:
        key = replay_key(iss, jti)
        with self._lock:
            seen_until = self._seen.get(key)
            if seen_until is not None and seen_until >= now:
                return False
            if len(self._seen) >= self.max_entries:
                self._seen = {k: v for k, v in self._seen.items() if v >= now}
                if len(self._seen) >= self.max_entries:
                    # Fail closed rather than forget jtis that may still be replayed.
                    raise ReplayStoreUnavailable("the in-memory replay store is full")
            self._seen[key] = expires_at
            return True

    def __len__(self) -> int:
        return len(self._seen)


class SqlReplayStore:
    """jtis in the ``jwt_replay`` table of the feedback/audit database (``cds.store``)."""

    PURGE_EVERY = 500  # inserts between deletions of expired rows

    def __init__(self, engine: Engine) -> None:
        from cds.store.models import jwt_replay

        self._engine = engine
        self._table = jwt_replay
        self._inserts = 0

    async def remember(self, iss: str, jti: str, expires_at: float, now: float) -> bool:
        return await run_in_threadpool(self._remember, replay_key(iss, jti), expires_at, now)

    def _remember(self, key: str, expires_at: float, now: float) -> bool:
        try:
            with self._engine.begin() as connection:
                self._inserts += 1
                if self._inserts % self.PURGE_EVERY == 1:
                    connection.execute(delete(self._table).where(self._table.c.expires_at < now))
                # A row of an expired token is removed before the insert, so a jti may come back
                # after its token expired (it is refused as expired anyway).
                connection.execute(delete(self._table).where(self._table.c.key == key, self._table.c.expires_at < now))
                connection.execute(insert(self._table).values(key=key, expires_at=expires_at))
            return True
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            raise ReplayStoreUnavailable(type(exc).__name__) from None
