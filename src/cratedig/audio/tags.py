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

__all__ = ["FIELDS", "MAX_TEXT", "file_tags", "name_tags", "read_tags", "write_tags"]

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


# What a sample pack's or a DJ's file name says (name_tags): "Bass_Loop_124bpm_Am.wav",
# "128 BPM - F# minor - pad.flac", "8A - Artist - Title.mp3", "Drums_Am_126.wav".
_BPM_MARKED = re.compile(
    r"(?<![\d.])(\d{2,3}(?:[.,]\d{1,2})?)\s*[-_ ]?\s*bpm(?![a-z])"
    r"|(?<![a-z])bpm\s*[-_ ]?\s*(\d{2,3}(?:[.,]\d{1,2})?)(?![\d])",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(r"[\s_\-.,()\[\]{}+]+")
# A key token needs its mode spelt out (Am, F#min, Ebmaj, C major): a bare "A" or "E" in a
# name is a word or a take, not a key.
_KEY_TOKEN = re.compile(r"([A-G])([#b\u266f\u266d]?)(m|min|minor|maj|major)", re.IGNORECASE)
_CAMELOT_TOKEN = re.compile(r"(1[0-2]|[1-9])([AB])")
_BARE_BPM = re.compile(r"\d{2,3}")


def name_tags(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The BPM and key a file's name states, as sample packs and DJs name files:
    ``{"bpm": 124.0, "key": "8A"}`` (either may be missing; ``{}`` when it states neither).

    A BPM needs its unit ("124bpm", "BPM 124", "124 BPM"), or must stand beside a key
    ("Drums_Am_126"). A key needs its mode spelt out ("Am", "F#min", "Eb major"; a note
    letter alone is too often a word or a take), or is a Camelot code that opens the name
    ("8A - Artist - Title", as key-renaming tools write it) or stands beside a BPM.

    Examples
    --------
    >>> name_tags("Loops/Bass_Loop_124bpm_Am.wav")
    {'bpm': 124.0, 'key': '8A'}
    >>> name_tags("8A - 6 - Artist - Title.mp3")
    {'key': '8A'}
    >>> name_tags("Part A - Take 2.wav")
    {}
    """
    stem = os.path.basename(os.fspath(path))
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    out: dict[str, Any] = {}
    m = _BPM_MARKED.search(stem)
    if m:
        bpm = _clean("bpm", m.group(1) or m.group(2))
        if bpm is not None:
            out["bpm"] = bpm
    tokens = [t for t in _SEPARATORS.split(stem) if t]
    for i, tok in enumerate(tokens):
        key = _key_of_tokens(tokens, i)
        if key is None:
            continue
        beside = [t for t in tokens[max(i - 1, 0) : i + 3] if _BARE_BPM.fullmatch(t)]
        # "8A" or "Am" alone may be a take or a word ("I Am..."): they need a BPM by them.
        if _CAMELOT_TOKEN.fullmatch(tok):
            sure = i == 0
        else:
            sure = not re.fullmatch(r"[A-Ga-g][mM]", tok)
        if not (sure or "bpm" in out or beside):
            continue
        out["key"] = key
        if "bpm" not in out:
            near = [b for b in (_clean("bpm", t) for t in beside) if b is not None and b >= 60]
            if near:
                out["bpm"] = near[0]
        break
    return out


def _key_of_tokens(tokens: list[str], i: int) -> str | None:
    """The Camelot code of the key that token ``i`` (with the next, for "F# minor") spells."""
    tok = tokens[i]
    text = None
    if _CAMELOT_TOKEN.fullmatch(tok):
        text = tok
    elif m := _KEY_TOKEN.fullmatch(tok):
        minor = m.group(3).lower() in ("m", "min", "minor")
        text = f"{m.group(1).upper()}{m.group(2)} {'minor' if minor else 'major'}"
    elif re.fullmatch(r"[A-G][#b\u266f\u266d]?", tok) and i + 1 < len(tokens):
        mode = tokens[i + 1].lower()
        if mode in ("minor", "min", "major", "maj"):
            text = f"{tok} {'minor' if mode.startswith('mi') else 'major'}"
    if text is None:
        return None
    try:
        return Key.parse(text.replace("\u266f", "#").replace("\u266d", "b")).camelot
    except ParameterError:
        return None


def file_tags(path: str | os.PathLike[str], *, name: str | None = None) -> dict[str, Any]:
    """:func:`read_tags`, with the BPM and key that the file's name states
    (:func:`name_tags`; ``name`` instead of the path's, e.g. an upload's own file name) where
    its tags have none; ``"from_name"`` then lists those fields."""
    tags = read_tags(path)
    named = {k: v for k, v in name_tags(name or path).items() if k not in tags}
    if named:
        tags = {**tags, **named, "from_name": sorted(named)}
    return tags


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
