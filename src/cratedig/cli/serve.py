"""``cratedig serve``: the REST service and the web page (:mod:`cratedig.service`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cratedig.cli._options import DbOption, err


def serve_command(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (beyond loopback: set CRATEDIG_TOKEN).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    music: Annotated[
        list[Path] | None,
        typer.Option("--music", help="A music folder the page may scan (repeat for more)."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Serve the REST API (OpenAPI at /docs) and the web page on http://HOST:PORT/."""
    import uvicorn

    from cratedig.service import ServiceSettings, create_app

    settings = ServiceSettings.from_environment(db=db, music=list(music or []), host=host)
    app = create_app(settings)
    err.print(
        f"cratedig serving {settings.shown_db} on http://{host}:{port}/ "
        f"(music: {', '.join(str(m) for m in settings.music) or 'none'})",
        soft_wrap=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve_command)
