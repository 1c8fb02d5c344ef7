"""The service's settings, declared as data: flags > environment > defaults."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cratedig.errors import ParameterError

#: Environment variable holding the bearer token that write endpoints need when the server is
#: bound beyond loopback.
TOKEN_ENV = "CRATEDIG_TOKEN"
#: Largest upload accepted (bytes); a 10-minute WAV at CD quality is ~106 MB.
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
#: Uploaded songs kept (so that their phrases can be played and rendered after the match).
KEEP_UPLOADS = 8
#: Match results kept per library state (``$CRATEDIG_MATCH_CACHE``; 0: none). A result only
#: changes when the library does, and a DJ goes back and forth between the same songs.
MATCH_CACHE = 512


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServiceSettings:
    """What ``cratedig serve`` runs with.

    Attributes
    ----------
    db : str or None
        Database URL or SQLite path (None: ``$CRATEDIG_DB`` or the default library).
    music : list of Path
        Folders the page may scan (resolved, existing); scans cannot leave them.
    host : str
        Bound address; beyond loopback, writes need ``token``.
    token : str or None
        Bearer token for writes (``$CRATEDIG_TOKEN``).
    max_upload_bytes : int
        Uploads beyond this are refused with 413.
    keep_uploads : int
        Uploaded songs kept for playing and rendering.
    match_cache : int
        Match results of library tracks kept until the library changes (0: none).
    """

    db: str | None = None
    music: list[Path] = field(default_factory=list)
    host: str = "127.0.0.1"
    token: str | None = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    keep_uploads: int = KEEP_UPLOADS
    match_cache: int = MATCH_CACHE

    def __post_init__(self) -> None:
        roots = []
        for m in self.music:
            p = Path(m).expanduser()
            if not p.is_dir():
                raise ParameterError(f"--music {m}: not a folder")
            roots.append(Path(os.path.realpath(p)))
        self.music = roots
        if self.token is not None and not self.token.strip():
            self.token = None
        if self.writes_need_token and self.token is None:
            raise ParameterError(
                f"serving on {self.host} (beyond this machine) needs a token for writes: set "
                f"{TOKEN_ENV}, or bind to 127.0.0.1"
            )

    @property
    def writes_need_token(self) -> bool:
        """Writes (scan, upload, render, rate) need the bearer token."""
        return not is_loopback(self.host)

    @property
    def shown_db(self) -> str:
        from cratedig.library.db import display_url, resolve_db_url

        return display_url(resolve_db_url(self.db))

    @classmethod
    def from_environment(
        cls, *, db: str | None = None, music: list[Path] | None = None, host: str = "127.0.0.1"
    ) -> ServiceSettings:
        """Settings from flags, with the token from ``$CRATEDIG_TOKEN``."""
        cache = os.environ.get("CRATEDIG_MATCH_CACHE", "")
        return cls(
            db=db,
            music=list(music or []),
            host=host,
            token=os.environ.get(TOKEN_ENV),
            match_cache=int(cache) if cache.strip().isdigit() else MATCH_CACHE,
        )
