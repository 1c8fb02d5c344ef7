"""Alembic environment: cratedig passes its own connection in ``config.attributes``.

Run programmatically by :func:`cratedig.library.db.migrate`; the ``alembic`` command line also
works (``alembic -x db=URL upgrade head`` from this folder's parent, or with
``sqlalchemy.url`` set).
"""

from __future__ import annotations

from alembic import context

from cratedig.library.schema import Base

config = context.config


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things: later migrations copy-and-move tables.
        render_as_batch=getattr(getattr(connection, "dialect", None), "name", "") == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from cratedig.library.db import create_library_engine, resolve_db_url

    url = context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_library_engine(resolve_db_url(url))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
