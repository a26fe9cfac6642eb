"""Snooze after an override: each audited card's family, band and findings; the snoozes themselves.

Revision ID: 0002_snooze
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_snooze"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_state",
        sa.Column(
            "card_uuid", sa.String(36), sa.ForeignKey("card_audit.card_uuid", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("card_family", sa.String(80), nullable=False),
        sa.Column("band", sa.String(16), nullable=True),
        sa.Column("findings", sa.Text, nullable=False),
    )
    op.create_index("ix_card_state_card_family", "card_state", ["card_family"])
    op.create_table(
        "card_snooze",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("patient_hash", sa.String(64), nullable=False),
        sa.Column("card_family", sa.String(80), nullable=False),
        sa.Column("card_uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("reason_code", sa.String(200), nullable=False),
        sa.Column("band", sa.String(16), nullable=True),
        sa.Column("findings", sa.Text, nullable=False),
        sa.Column("snoozed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )
    # The hook path asks: is this family snoozed for this patient now? One index answers it.
    op.create_index("ix_card_snooze_lookup", "card_snooze", ["patient_hash", "card_family", "until"])


def downgrade() -> None:
    op.drop_index("ix_card_snooze_lookup", table_name="card_snooze")
    op.drop_table("card_snooze")
    op.drop_index("ix_card_state_card_family", table_name="card_state")
    op.drop_table("card_state")
