"""Alembic environment: migrations run on the connection Custody hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

# The derived-state tables live on the same metadata; import them so autogenerate sees them.
import ledger.storage.domain_schema  # noqa: F401
from ledger.storage.schema import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ledger.storage.database.migrate()")
run_migrations(connection)
