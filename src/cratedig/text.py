"""Text that is safe to show on a terminal, whatever a file name holds.

A file name may hold any byte but ``/`` and NUL: escape sequences that clear or rewrite the
screen, carriage returns, bidirectional overrides, bytes that are not UTF-8 (lone surrogates
after :func:`os.fsdecode`). :func:`printable` writes each such character as a visible escape
(``\\x1b``, ``\\xff``, ``\\u202e``), so a name is shown exactly once, unambiguously, and can
neither drive the terminal nor crash the encoder of standard output.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 controls, DEL, lone surrogates, and format characters (bidi overrides, zero width).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    if o <= 0xFF:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}"


def printable(text: object) -> str:
    """``text`` with every character that could drive or break a terminal escaped.

    Examples
    --------
    >>> printable("evil\\x1b[2Jname.mp3")
    'evil\\\\x1b[2Jname.mp3'
    >>> printable("caf\\udce9.wav")
    'caf\\\\xe9.wav'
    >>> printable("Beyoncé – Halo.flac")
    'Beyoncé – Halo.flac'
    """
    s = str(text)
    if _UNSAFE.search(s) is None:
        return s
    return _UNSAFE.sub(_escape, s)
