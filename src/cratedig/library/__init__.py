"""The library: a database of analysed tracks, the files that hold them, and their slices.

- :mod:`.db`: where the database is, opening and migrating it (:func:`open_library`).
- :mod:`.schema`: the tables; :mod:`.repository`: storing, loading and querying them.
- :mod:`.scan`: finding audio files; :mod:`.ingest`: bringing the library up to date.
- :mod:`.slices`: phrase segments as audio files with JSON sidecars.
"""

from cratedig.library.db import Library, open_library, resolve_db_url
from cratedig.library.errors import (
    DatabaseReadOnly,
    DatabaseUnavailable,
    DiskFull,
    LibraryError,
    SliceError,
)

__all__ = [
    "DatabaseReadOnly",
    "DatabaseUnavailable",
    "DiskFull",
    "Library",
    "LibraryError",
    "SliceError",
    "open_library",
    "resolve_db_url",
]
