"""SQLAlchemy 2 table definitions. Alembic migrations under ``storage/migrations`` create them.

Design notes:

- ``messages.offset`` is the token position of a message in its conversation (the sum of the
  stored token counts of every earlier message), kept in step with ``conversations.total_tokens``.
  Loading a window-sized suffix is then one range scan on ``(conversation_id, offset)``: a turn's
  cost depends on the model's window, never on the conversation's length.
- ``inbound_events`` is the dedupe ledger: ``(tenant, channel, event_id)`` is unique, so a vendor
  retry after a restart is still recognised.
- ``turns`` and ``deliveries`` hold processing state, so a restart after a crash finishes every
  accepted turn and delivers every reply once.
- ``channel_state`` is each (tenant, channel)'s own key/value state (a login session, a poll cursor).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "CHANNEL_STATE",
    "CONVERSATIONS",
    "DELIVERIES",
    "DEPLOYMENT_KEYS",
    "INBOUND_EVENTS",
    "MESSAGES",
    "MODEL_CALLS",
    "SUMMARIES",
    "TURNS",
    "WEBHOOK_NONCES",
    "Base",
    "ChannelStateRow",
    "Conversation",
    "Delivery",
    "DeploymentKey",
    "InboundEvent",
    "MessageRow",
    "ModelCall",
    "Summary",
    "TurnRow",
    "WebhookNonce",
]

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

_naming = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_naming)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("tenant", "channel", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    message_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_offset", "conversation_id", "offset"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        Index("ix_messages_turn_id", "turn_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    turn_id: Mapped[str] = mapped_column(String(36))
    turn_start: Mapped[bool] = mapped_column(Boolean, default=False)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    tool_calls: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, nullable=True)
    tool_call_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    is_error: Mapped[bool] = mapped_column(Boolean, default=False)
    token_count: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Summary(Base):
    """A model-written summary of every message with ``offset < upto_offset``."""

    __tablename__ = "summaries"
    __table_args__ = (Index("ix_summaries_conversation_upto", "conversation_id", "upto_offset"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    upto_offset: Mapped[int] = mapped_column(BigInteger)
    upto_message_id: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TurnRow(Base):
    """One processing unit: the model/tool loop answering one or more user messages."""

    __tablename__ = "turns"
    __table_args__ = (
        Index("ix_turns_status", "status"),
        Index("ix_turns_conversation_id", "conversation_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed | cancelled
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class InboundEvent(Base):
    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("tenant", "channel", "event_id"),
        Index("ix_inbound_events_turn_id", "turn_id"),
        Index("ix_inbound_events_sender", "tenant", "channel", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(255))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(BigInteger)
    turn_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(255))
    reply_target: Mapped[dict[str, object]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """The reply of one turn on its way to the channel. ``status``: pending | sent | failed."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_status", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    turn_id: Mapped[str] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), unique=True)
    tenant: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Parts of the reply already delivered (a retry resumes after them)."""
    sending_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """Set while part ``progress`` is handed to the vendor: found set after a crash, that part may
    already have arrived (the adapter checks with the vendor or relies on its dedupe)."""
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ModelCall(Base):
    """The ledger: one row per real model call (every attempt, including failed ones)."""

    __tablename__ = "model_calls"
    __table_args__ = (Index("ix_model_calls_tenant_day", "tenant", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(128))
    conversation_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    turn_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    model: Mapped[str] = mapped_column(String(64))
    provider_model: Mapped[str] = mapped_column(String(128))
    attempt: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(32), default="turn")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(32))
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[date] = mapped_column(Date)


class ChannelStateRow(Base):
    """One value of a channel's persistent state (JSON), per (tenant, channel, key)."""

    __tablename__ = "channel_state"
    __table_args__ = (UniqueConstraint("tenant", "channel", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[object] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookNonce(Base):
    """A signed webhook's (timestamp, nonce), bound to the one body it was accepted with.

    The same pair with another body is a replay carrying a forged message. Rows are needed only while
    the timestamp is inside the replay window; ``expires_at`` says when a row may be deleted.
    """

    __tablename__ = "webhook_nonces"
    __table_args__ = (
        UniqueConstraint("tenant", "channel", "timestamp", "nonce"),
        Index("ix_webhook_nonces_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[str] = mapped_column(String(128))
    body_sha256: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeploymentKey(Base):
    """A random key shared by every process of a deployment (e.g. what signs web chat resume tokens)."""

    __tablename__ = "deployment_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# Core (non-ORM) handles: the repositories use Core statements, which are much faster per row.
CONVERSATIONS = cast(Table, Conversation.__table__)
MESSAGES = cast(Table, MessageRow.__table__)
SUMMARIES = cast(Table, Summary.__table__)
TURNS = cast(Table, TurnRow.__table__)
INBOUND_EVENTS = cast(Table, InboundEvent.__table__)
DELIVERIES = cast(Table, Delivery.__table__)
MODEL_CALLS = cast(Table, ModelCall.__table__)
CHANNEL_STATE = cast(Table, ChannelStateRow.__table__)
WEBHOOK_NONCES = cast(Table, WebhookNonce.__table__)
DEPLOYMENT_KEYS = cast(Table, DeploymentKey.__table__)
