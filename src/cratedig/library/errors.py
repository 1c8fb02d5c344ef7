"""Errors of the library layer: each one a line a user can act on."""

from __future__ import annotations

from cratedig.errors import CratedigError


class LibraryError(CratedigError):
    """The library (database or slice folder) cannot do what was asked."""


class DatabaseUnavailable(LibraryError):
    """The database cannot be opened or reached (bad URL, server down, missing driver)."""


class DatabaseReadOnly(LibraryError):
    """The database refuses writes (read-only file, folder, mount or transaction)."""


class DiskFull(LibraryError):
    """No space left for the database or the slice files."""


class SliceError(LibraryError):
    """A track's slices cannot be written (source changed or missing, bad format)."""
