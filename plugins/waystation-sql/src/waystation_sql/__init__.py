"""waystation-sql: the DatabaseSaveStation (SQLite by default, PostgreSQL by URL)."""

__version__ = "0.1.0"
