"""Durable storage of the log behind SQLAlchemy 2.0 (SQLite or PostgreSQL)."""

from ledger.storage.database import create_database_engine, default_url, migrate
from ledger.storage.log_store import LogStore

__all__ = ["LogStore", "create_database_engine", "default_url", "migrate"]
