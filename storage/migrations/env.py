"""Alembic environment. Run in-process by ``Database.upgrade`` with a ready connection."""

from __future__ import annotations

from alembic import context

from storage.tables import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `botframework db upgrade --config FILE`, not the alembic CLI")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
