"""procrastinate's job queue schema (PostgreSQL only): the queue scale-out workers take turns from

Revision ID: 0005
Revises: 0004

The schema is procrastinate's own ``schema.sql`` for the installed version, applied in this
migration's transaction so ``db upgrade`` (or ``storage.auto_migrate``) prepares the queue with the
rest of the database. It is skipped when the tables already exist (a database where an operator
applied procrastinate's schema by hand), and on SQLite, which runs the embedded queue only.
"""

from __future__ import annotations

import re
from importlib import resources

from alembic import op
from sqlalchemy import text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _schema_sql() -> str:
    return resources.files("procrastinate").joinpath("sql/schema.sql").read_text(encoding="utf-8")


def _run_script(sql: str) -> None:
    """Several statements with ``$$`` bodies: sent as one simple-protocol script on the raw asyncpg connection."""
    dbapi = op.get_bind().connection.dbapi_connection
    assert dbapi is not None
    dbapi.run_async(lambda raw: raw.execute(sql))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if bind.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None:
        return
    _run_script(_schema_sql())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    sql = _schema_sql()
    tables = re.findall(r"^CREATE TABLE (\w+)", sql, flags=re.MULTILINE)
    functions = re.findall(r"^CREATE FUNCTION (\w+)", sql, flags=re.MULTILINE)
    types = re.findall(r"^CREATE TYPE (\w+)", sql, flags=re.MULTILINE)
    drops = [f"DROP TABLE IF EXISTS {t} CASCADE;" for t in reversed(tables)]
    drops += [f"DROP FUNCTION IF EXISTS {f} CASCADE;" for f in functions]
    drops += [f"DROP TYPE IF EXISTS {t} CASCADE;" for t in types]
    _run_script("\n".join(drops))
