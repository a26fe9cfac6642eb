"""Coverage telemetry: codes no value set recognised, with counts and the text layer's match (no PHI).

Revision ID: 0003_terminology_gaps
Revises: 0002_snooze
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_terminology_gaps"
down_revision = "0002_snooze"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "terminology_gap",
        sa.Column("system", sa.String(200), primary_key=True),
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("text_match", sa.String(200), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_terminology_gap_last_seen", "terminology_gap", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_terminology_gap_last_seen", table_name="terminology_gap")
    op.drop_table("terminology_gap")
