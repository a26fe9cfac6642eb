"""Initial schema: card audit, rules and suggestions per card, feedback, JWT replay store.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_audit",
        sa.Column("card_uuid", sa.String(36), primary_key=True),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("hook", sa.String(128), nullable=False),
        sa.Column("hook_instance", sa.String(36), nullable=False),
        sa.Column("ruleset_version", sa.String(64), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("patient_hash", sa.String(64), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_card_audit_service_id", "card_audit", ["service_id"])
    op.create_index("ix_card_audit_hook_instance", "card_audit", ["hook_instance"])
    op.create_index("ix_card_audit_patient_hash", "card_audit", ["patient_hash"])
    op.create_index("ix_card_audit_issued_at", "card_audit", ["issued_at"])
    op.create_table(
        "card_rule",
        sa.Column(
            "card_uuid", sa.String(36), sa.ForeignKey("card_audit.card_uuid", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("rule_id", sa.String(200), primary_key=True),
    )
    op.create_index("ix_card_rule_rule_id", "card_rule", ["rule_id"])
    op.create_table(
        "card_suggestion",
        sa.Column(
            "card_uuid", sa.String(36), sa.ForeignKey("card_audit.card_uuid", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("suggestion_uuid", sa.String(36), primary_key=True),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "card_uuid", sa.String(36), sa.ForeignKey("card_audit.card_uuid", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("accepted_suggestions", sa.Text, nullable=True),
        sa.Column("override_system", sa.String(500), nullable=True),
        sa.Column("override_code", sa.String(200), nullable=True),
        sa.Column("override_display", sa.String(500), nullable=True),
        sa.Column("override_comment", sa.Text, nullable=True),
        sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_iss", sa.String(500), nullable=True),
    )
    op.create_index("ix_feedback_card_uuid", "feedback", ["card_uuid"])
    op.create_table(
        "jwt_replay",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_jwt_replay_expires_at", "jwt_replay", ["expires_at"])


def downgrade() -> None:
    op.drop_table("jwt_replay")
    op.drop_table("feedback")
    op.drop_table("card_suggestion")
    op.drop_table("card_rule")
    op.drop_table("card_audit")
