"""Names on the terminal: escape sequences and undecodable bytes shown, never obeyed."""

import os

from hypothesis import given
from hypothesis import strategies as st

from cratedig.text import printable


def test_escape_sequences_and_bad_bytes_are_shown_escaped():
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("ring\x07\r\n") == "ring\\x07\\x0d\\x0a"
    assert printable(os.fsdecode(b"caf\xe9")) == "caf\\xe9"
    assert printable("\u202eevil") == "\\u202eevil"
    assert printable("Beyoncé – Déjà Vu (Remix) [2006].flac") == (
        "Beyoncé – Déjà Vu (Remix) [2006].flac"
    )


@given(st.binary(max_size=40))
def test_any_file_name_prints_as_one_safe_line(name):
    shown = printable(os.fsdecode(name))
    shown.encode("utf-8")  # never a lone surrogate
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
