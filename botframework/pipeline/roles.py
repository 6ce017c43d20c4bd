"""What a process does when the bot runs as several processes sharing one PostgreSQL database."""

from __future__ import annotations

import enum

from sqlalchemy.engine import make_url

__all__ = ["Role", "libpq_dsn", "scale_out_refusal"]


class Role(enum.StrEnum):
    ALL = "all"
    """Accept, run turns and deliver (``serve``, the default)."""
    INGRESS = "ingress"
    """Accept and acknowledge, relay live replies to its sockets; never runs a model (``serve --role ingress``)."""
    WORKER = "worker"
    """Run turns and deliveries from the shared queue (``botframework worker``)."""


def scale_out_refusal(storage_url: str, what: str) -> str | None:
    """The one line to print when ``what`` cannot run on this database, else None."""
    if make_url(storage_url).get_backend_name() == "postgresql":
        return None
    return (
        f"error: {what} needs PostgreSQL: several processes share the turn queue in the database. Set "
        "storage.url to postgresql+asyncpg://..., or run everything in one process with `botframework serve`."
    )


def libpq_dsn(storage_url: str) -> str:
    """The SQLAlchemy URL as a plain ``postgresql://`` DSN (asyncpg and psycopg both take it)."""
    return make_url(storage_url).set(drivername="postgresql").render_as_string(hide_password=False)
