"""What a file's tags say: title, artist, album, genre, year, and the BPM and key a DJ program
(or the label) wrote there.

Read with mutagen from ID3 (MP3, WAV, AIFF), Vorbis comments (FLAC, OGG, Opus) and MP4 atoms
(M4A, ``.stem.mp4``). Tags are a convenience: a file without them, or whose tags cannot be
read, gives ``{}`` and is analysed all the same. Text is stripped of control characters and
cut to :data:`MAX_TEXT` characters; a BPM must read as a number in 30-300 and a key as a key
(``Am``, ``F#``, ``8A``, ``Eb minor``...) or it is left out.

Examples
--------
>>> read_tags("/no/such/file.mp3")
{}
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from cratedig.errors import ParameterError
from cratedig.theory import Key

log = logging.getLogger(__name__)

__all__ = ["FIELDS", "MAX_TEXT", "read_tags", "write_tags"]

#: The fields read, in the order shown.
FIELDS = ("artist", "title", "album", "genre", "year", "bpm", "key")
#: Longest text kept per field.
MAX_TEXT = 200

# Where each field lives in each tag family (first found wins).
_ID3 = {
    "title": ("TIT2",),
    "artist": ("TPE1", "TPE2"),
    "album": ("TALB",),
    "genre": ("TCON",),
    "year": ("TDRC", "TYER"),
    "bpm": ("TBPM",),
    "key": ("TKEY",),
}
_VORBIS = {
    "title": ("title",),
    "artist": ("artist", "albumartist"),
    "album": ("album",),
    "genre": ("genre",),
    "year": ("date", "year"),
    "bpm": ("bpm", "tempo"),
    "key": ("initialkey", "key"),
}
_MP4 = {
    "title": ("\xa9nam",),
    "artist": ("\xa9ART", "aART"),
    "album": ("\xa9alb",),
    "genre": ("\xa9gen",),
    "year": ("\xa9day",),
    "bpm": ("tmpo",),
    "key": ("----:com.apple.iTunes:initialkey", "----:com.apple.iTunes:KEY"),
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def read_tags(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tags of the file at ``path`` that say something: ``{"artist": "...", "bpm": 128.0,
    "key": "8A", ...}`` (text fields as strings, ``bpm`` a float, ``key`` a Camelot code);
    ``{}`` when there are none or they cannot be read (logged at debug level)."""
    try:
        import mutagen
        from mutagen.id3 import ID3
        from mutagen.mp4 import MP4Tags

        f = mutagen.File(os.fspath(path))
    except Exception as exc:  # a damaged header: the audio may still decode
        log.debug("tags of %s unreadable: %s", path, exc)
        return {}
    tags = getattr(f, "tags", None) if f is not None else None
    if not tags:
        return {}
    if isinstance(tags, ID3):
        where, get = _ID3, lambda k: [str(x) for x in tags[k].text] if k in tags else []
    elif isinstance(tags, MP4Tags):
        where, get = _MP4, lambda k: [_mp4_text(x) for x in tags.get(k, [])]
    else:  # Vorbis comments and other key -> list of text mappings
        where, get = _VORBIS, lambda k: [str(x) for x in _vorbis(tags, k)]
    out: dict[str, Any] = {}
    for field in FIELDS:
        for name in where[field]:
            try:
                values = [v for v in get(name) if v and v.strip()]
            except Exception:  # one odd frame loses one field, not the others
                values = []
            if values:
                # several artists or genres read as one ("A, B"); one title, year, BPM, key
                joined = ", ".join(values) if field in ("artist", "genre") else values[0]
                value = _clean(field, joined)
                if value is not None:
                    out[field] = value
                    break
    return out


def _vorbis(tags: Any, key: str) -> list[Any]:
    try:
        return list(tags.get(key, [])) or list(tags.get(key.upper(), []))
    except (KeyError, ValueError, TypeError):
        return []


def _mp4_text(x: Any) -> str:
    if isinstance(x, bytes):  # a freeform atom
        return x.decode("utf-8", "replace")
    return str(x)


def _clean(field: str, text: str) -> Any:
    text = _CONTROL.sub(" ", text).strip()[:MAX_TEXT]
    if not text:
        return None
    if field == "bpm":
        try:
            bpm = float(text.replace(",", "."))
        except ValueError:
            return None
        return round(bpm, 2) if 30.0 <= bpm <= 300.0 else None
    if field == "key":
        try:
            return Key.parse(_key_text(text)).camelot
        except ParameterError:
            return None
    if field == "year":
        m = re.match(r"\d{4}", text)
        return m.group(0) if m else None
    return text


def _key_text(text: str) -> str:
    """Open Key notation ("8m", "1d") and "o" for off-key read as Camelot; others as written."""
    m = re.fullmatch(r"(\d{1,2})\s*([dm])", text.strip(), re.IGNORECASE)
    if m:
        # Open Key 1d = C major = Camelot 8B; 1m = A minor = 8A.
        n = (int(m.group(1)) + 6) % 12 + 1
        return f"{n}{'B' if m.group(2).lower() == 'd' else 'A'}"
    return text


def write_tags(path: str | os.PathLike[str], tags: dict[str, Any]) -> None:
    """Write ``tags`` (the fields of :data:`FIELDS`; ``key`` as written, e.g. ``"Am"``) into
    the file at ``path``: ID3 in WAV, AIFF and MP3, Vorbis comments in FLAC and OGG. For the
    demo library and tests; cratedig never changes a user's files.

    Raises
    ------
    ParameterError
        For another format.
    """
    from mutagen.aiff import AIFF
    from mutagen.flac import FLAC
    from mutagen.id3 import TALB, TBPM, TCON, TDRC, TIT2, TKEY, TPE1
    from mutagen.mp3 import MP3
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    suffix = os.fspath(path).lower().rsplit(".", 1)[-1]
    id3 = {"wav": WAVE, "aiff": AIFF, "aif": AIFF, "mp3": MP3}
    vorbis = {"flac": FLAC, "ogg": OggVorbis}
    text = {k: str(v) for k, v in tags.items() if k in FIELDS and v is not None}
    if suffix in id3:
        f = id3[suffix](os.fspath(path))
        if f.tags is None:
            f.add_tags()
        frames = {"artist": TPE1, "title": TIT2, "album": TALB, "genre": TCON, "year": TDRC,
                  "bpm": TBPM, "key": TKEY}  # fmt: skip
        frame_set: Any = f.tags
        for k, v in text.items():
            frame_set.add(frames[k](encoding=3, text=v))
        f.save()
    elif suffix in vorbis:
        f = vorbis[suffix](os.fspath(path))
        names = {"year": "DATE", "key": "INITIALKEY"}
        for k, v in text.items():
            f[names.get(k, k.upper())] = v
        f.save()
    else:
        raise ParameterError(f"{path}: tags are written to WAV, AIFF, MP3, FLAC and OGG only")
