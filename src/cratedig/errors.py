"""One small exception hierarchy: every error a user can cause has a type and a clear message."""

from __future__ import annotations


class CratedigError(Exception):
    """Base class of every error cratedig raises on purpose."""


class ParameterError(CratedigError, ValueError):
    """A function was called with a value outside its documented domain."""


class AudioError(CratedigError):
    """An audio file or buffer cannot be analysed.

    Parameters
    ----------
    path : str or None
        The file concerned, when there is one.
    reason : str
        One line a DJ can act on ("truncated MP3", "only 2.1 s long, need 5 s").
    """

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class DecodeError(AudioError):
    """The file is not audio, or is damaged beyond decoding."""


class UnsupportedAudio(AudioError):
    """Decodable audio that cratedig refuses: too short, too long, silent."""


class OutputError(CratedigError):
    """An output file (``-o``, ``--plan``, a slice folder...) cannot be written where asked."""
