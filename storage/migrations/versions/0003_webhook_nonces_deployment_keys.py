"""webhook_nonces (replay protection), deployment_keys (keys shared by every process), an index on senders

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_nonces",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_nonces")),
        sa.UniqueConstraint(
            "tenant", "channel", "timestamp", "nonce", name=op.f("uq_webhook_nonces_tenant_channel_timestamp_nonce")
        ),
    )
    with op.batch_alter_table("webhook_nonces", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_nonces_expires_at", ["expires_at"], unique=False)
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_events_sender", ["tenant", "channel", "user_id"], unique=False)
    op.create_table(
        "deployment_keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployment_keys")),
    )


def downgrade() -> None:
    op.drop_table("deployment_keys")
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_events_sender")
    with op.batch_alter_table("webhook_nonces", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_nonces_expires_at")
    op.drop_table("webhook_nonces")
