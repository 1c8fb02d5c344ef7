"""Alembic migrations of the library schema (run by :func:`cratedig.library.db.migrate`)."""
