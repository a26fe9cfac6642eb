"""The feedback and audit schema (SQLAlchemy 2). Changes go through an Alembic migration.

No PHI is stored: the patient appears only as a keyed HMAC of its id; cards
are identified by their uuid and the rules that raised them, not their text.
Free-text override comments are the clinician's words and are kept, because
they are what informaticists read to improve a rule (see docs in cds.store).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """The store's tables; its metadata is what Alembic migrations are compared with."""


class CardAudit(Base):
    """One card the service issued."""

    __tablename__ = "card_audit"

    card_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(128), index=True)
    hook: Mapped[str] = mapped_column(String(128))
    hook_instance: Mapped[str] = mapped_column(String(36), index=True)
    ruleset_version: Mapped[str] = mapped_column(String(64))
    indicator: Mapped[str] = mapped_column(String(16))
    patient_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class CardRule(Base):
    """A rule that raised a card (``Evaluation.card_rules``)."""

    __tablename__ = "card_rule"

    card_uuid: Mapped[str] = mapped_column(ForeignKey("card_audit.card_uuid", ondelete="CASCADE"), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)


class CardSuggestion(Base):
    __tablename__ = "card_suggestion"

    card_uuid: Mapped[str] = mapped_column(ForeignKey("card_audit.card_uuid", ondelete="CASCADE"), primary_key=True)
    suggestion_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)


class FeedbackRecord(Base):
    """One feedback item; ``dedup_key`` makes a repeated post a no-op."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    card_uuid: Mapped[str] = mapped_column(ForeignKey("card_audit.card_uuid", ondelete="CASCADE"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    accepted_suggestions: Mapped[str | None] = mapped_column(Text)  # JSON array of suggestion uuids
    override_system: Mapped[str | None] = mapped_column(String(500))
    override_code: Mapped[str | None] = mapped_column(String(200))
    override_display: Mapped[str | None] = mapped_column(String(500))
    override_comment: Mapped[str | None] = mapped_column(Text)
    outcome_timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    client_iss: Mapped[str | None] = mapped_column(String(500))


class JwtReplay(Base):
    """jtis seen, for the shared replay store (``cds.auth.replay.SqlReplayStore``)."""

    __tablename__ = "jwt_replay"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_jwt_replay_expires_at", "expires_at"),)


def table_of(model: type[Base]) -> Table:
    """A model's table, typed as the Table it is (declarative models type it as a FromClause)."""
    return cast(Table, model.__table__)


jwt_replay = table_of(JwtReplay)


class CardState(Base):
    """What a later override of a card is compared with: its family (template), band and findings."""

    __tablename__ = "card_state"

    card_uuid: Mapped[str] = mapped_column(ForeignKey("card_audit.card_uuid", ondelete="CASCADE"), primary_key=True)
    card_family: Mapped[str] = mapped_column(String(80), index=True)
    band: Mapped[str | None] = mapped_column(String(16))
    findings: Mapped[str] = mapped_column(Text)  # JSON array of rule ids


class CardSnooze(Base):
    """An 'already addressed' or 'not relevant' override: the card family stays hidden for the patient until
    ``until`` unless the evidence changes materially (cds.cards.snooze)."""

    __tablename__ = "card_snooze"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_hash: Mapped[str] = mapped_column(String(64))
    card_family: Mapped[str] = mapped_column(String(80))
    card_uuid: Mapped[str] = mapped_column(String(36), unique=True)  # one snooze per overridden card
    reason_code: Mapped[str] = mapped_column(String(200))
    band: Mapped[str | None] = mapped_column(String(16))
    findings: Mapped[str] = mapped_column(Text)  # JSON array of rule ids
    snoozed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_card_snooze_lookup", "patient_hash", "card_family", "until"),)


class TerminologyGap(Base):
    """Coverage telemetry (issue 13, ADR 0005): a code no value set recognised, how often it was seen and
    the value set(s) the text layer recognised instead. Codes and counts only: no patient, no text, no
    display, no date of care (``first_seen``/``last_seen`` are when the service saw the code)."""

    __tablename__ = "terminology_gap"

    system: Mapped[str] = mapped_column(String(200), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    text_match: Mapped[str] = mapped_column(String(200))  # value set ids, comma-separated; "" when none
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
