"""The library as a rekordbox XML collection: beat grids, keys and section cues for a DJ's player.

rekordbox imports a collection written in its XML format (Preferences > Advanced > Database >
rekordbox xml, then the "rekordbox xml" tree in the browser), and so do the tools DJs use to
move libraries between players. Exporting cratedig's analysis there puts the bar grid, the key
and the sections where a DJ mixes: on the decks.

What is written (Pioneer's "rekordbox XML format" list; ``DJ_PLAYLISTS`` version 1.0.0):

- one ``COLLECTION/TRACK`` per audio file of the library: ``Location`` (``file://localhost``
  and the percent-encoded absolute path), ``Name`` (the title tag, else the file name without
  its suffix), ``Artist``, ``Album``, ``Genre``, ``Year`` where the file's tags say, ``Kind``,
  ``Size``, ``TotalTime`` (whole seconds; rekordbox ignores cues without it), ``SampleRate``,
  ``AverageBpm``, ``Tonality`` (rekordbox's key names: ``Am``, ``F#``, ``Dbm``...) and
  ``Comments`` (the Camelot code, the track id and any doubt of the analysis, e.g. "tempo
  140.0 BPM, or 105.0 (3:4)?");
- the beat grid as ``TEMPO`` marks (:func:`tempo_marks`): ``Inizio`` (s) a beat, ``Bpm``,
  ``Metro`` (the time signature) and ``Battito`` (that beat's number in its bar). A grid is
  re-anchored on a bar line wherever the mark before it, with its BPM rounded to the 0.01
  rekordbox keeps, would be more than :data:`GRID_TOLERANCE` off the analysis' beats: one mark
  for a steady track, a mark per bar or so where the tempo moves, a mark per beat inside a bar
  played freely (every beat of the analysis is then on the grid within the tolerance);
- a memory cue (``POSITION_MARK``, ``Type`` 0, ``Num`` -1) at the start of every section,
  named by its label and repetition group ("drop B"); with ``hot_cues`` also hot cues A-H
  (``Num`` 0-7) on the first eight sections, coloured by their role;
- ``PLAYLISTS``: a folder ``cratedig`` with a playlist of every track and a folder ``by key``
  with one playlist per Camelot code ("8A Am"), in wheel order.

The file is written atomically. Files gone from disk since they were ingested are left out and
counted; formats rekordbox does not play (OGG) are written all the same for the other readers of
the format.
"""

from __future__ import annotations

import io
import os
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cratedig import __version__
from cratedig.analysis.records import TrackAnalysis
from cratedig.fileio import check_output, output_path
from cratedig.library import repository as repo
from cratedig.library.db import Library
from cratedig.theory import Key, camelot_parts

#: Most a beat of the written grid may sit off the analysis' beat (seconds) before the grid is
#: re-anchored: a tenth of the 70 ms a beat tracker's F-measure allows.
GRID_TOLERANCE = 0.007
#: rekordbox's key names by pitch class (its own spelling: sharps for F#, flats elsewhere).
MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("Cm", "Dbm", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "Abm", "Am", "Bbm", "Bm")
KINDS = {
    ".mp3": "MP3 File",
    ".wav": "WAV File",
    ".wave": "WAV File",
    ".flac": "FLAC File",
    ".aif": "AIFF File",
    ".aiff": "AIFF File",
    ".m4a": "M4A File",
    ".mp4": "M4A File",
    ".ogg": "OGG File",
    ".oga": "OGG File",
}
#: Hot-cue colours (red, green, blue) by section role.
ROLE_COLOURS = {
    "intro": (48, 90, 255),
    "outro": (48, 90, 255),
    "build": (255, 160, 0),
    "verse": (180, 180, 180),
    "chorus": (230, 40, 40),
    "drop": (230, 40, 40),
    "break": (40, 226, 20),
}
URL_PREFIX = "file://localhost"


def tonality(key: Key) -> str:
    """rekordbox's name of ``key``.

    >>> tonality(Key.parse("A minor")), tonality(Key.parse("C# major")), tonality(Key.parse("8B"))
    ('Am', 'Db', 'C')
    """
    return (MINOR_NAMES if key.mode == "minor" else MAJOR_NAMES)[key.tonic]


def location(path: str | os.PathLike[str]) -> str:
    """The ``Location`` of a file: ``file://localhost`` and its absolute path, percent-encoded.

    >>> location("/music/DJ sets/Café.flac")
    'file://localhost/music/DJ%20sets/Caf%C3%A9.flac'
    """
    p = Path(os.path.abspath(os.fspath(path))).as_posix()
    if not p.startswith("/"):  # a Windows drive: file://localhost/C:/...
        p = "/" + p
    # The file system's own bytes, so a name that is not UTF-8 still names its file.
    return URL_PREFIX + urllib.parse.quote(os.fsencode(p), safe="/:")


def path_of_location(url: str) -> str:
    """Inverse of :func:`location`."""
    if not url.startswith(URL_PREFIX):
        raise ValueError(f"not a rekordbox file location: {url!r}")
    return os.fsdecode(urllib.parse.unquote_to_bytes(url[len(URL_PREFIX) :]))


def xml_text(text: str) -> str:
    r"""``text`` as XML 1.0 can hold it: bytes of a non-UTF-8 file name shown as U+FFFD, control
    characters other than tab and newlines dropped.

    >>> xml_text("caf\udce9 \x01mix")
    'caf\ufffd mix'
    """
    clean = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(c for c in clean if c >= " " or c in "\t\n\r")


@dataclass(frozen=True)
class TempoMark:
    """One ``TEMPO`` element: from ``start`` (s) on, beats every 60 / ``bpm`` s; the beat at
    ``start`` is number ``beat`` of its bar."""

    start: float
    bpm: float
    beat: int


def tempo_marks(
    beats: np.ndarray,
    downbeats: np.ndarray,
    beats_per_bar: int,
    *,
    tolerance: float = GRID_TOLERANCE,
) -> list[TempoMark]:
    """Marks, on bar lines where they can be, that reproduce ``beats`` within ``tolerance``.

    The first mark sits on the first beat (a pickup beat gets its number in the bar), later
    ones on bar lines. A mark covers bar after bar while one line still fits all their beats:
    its BPM from a least-squares line through them, rounded to the 0.01 rekordbox keeps, and
    its start the offset that line then fits best. Where not even one bar fits (rubato inside
    it), marks go beat by beat until the next bar line. A first beat at exactly 0 s is taken as
    clamped there (the analysis puts a beat a few ms before the file's start at 0) and not
    fitted; a mark whose fitted start would fall before 0 s starts a beat later.

    Parameters
    ----------
    beats, downbeats : np.ndarray
        Seconds, ascending; every downbeat is one of the beats.
    beats_per_bar : int >= 1

    Returns
    -------
    list of TempoMark
        Empty with fewer than two beats (rekordbox then grids the track itself).
    """
    b = np.asarray(beats, dtype=np.float64)
    if len(b) < 2:
        return []
    m = max(int(beats_per_bar), 1)
    d = np.asarray(downbeats, dtype=np.float64)
    first = int(np.argmin(np.abs(b - d[0]))) if len(d) else 0
    number = (np.arange(len(b)) - first) % m + 1  # each beat's number in its bar
    # Where a mark may end (and the next start): every bar line, and one past the last beat.
    anchors = [int(i) for i in np.flatnonzero(number == 1) if i > 0] + [len(b)]
    weight = np.ones(len(b))
    if b[0] <= 0.0:
        weight[0] = 0.0

    def fit(i: int, j: int) -> tuple[float, float, float]:
        """(start, bpm, worst miss) of a mark from beat i up to the next mark's beat j: the
        line must also land on beat j, or a player would lay a beat too many or too few
        before the next mark."""
        j = min(j, len(b) - 1)
        k = np.arange(i, j + 1, dtype=np.float64) - i
        y, w = b[i : j + 1], weight[i : j + 1]
        if j == i:  # the last beat alone: the interval before it
            step = float(b[i] - b[i - 1]) if i > 0 else float(np.median(np.diff(b)))
        elif w.sum() < 2:
            step = float(b[j] - b[i]) / (j - i)
        else:
            step = float(np.polyfit(k[w > 0], y[w > 0], 1)[0])
        bpm = round(60.0 / step, 2)
        step = 60.0 / bpm
        t0 = float(np.average(y - k * step, weights=w)) if w.sum() > 0 else float(y[0])
        miss = float(np.max(np.abs(t0 + k * step - y) * w))
        return t0, bpm, miss

    marks: list[TempoMark] = []
    i = 0
    while i < len(b):
        ends = [e for e in anchors if e > i]  # bar lines after i, then one past the last beat
        end = 0
        for e in ends:  # whole bars while one line fits them
            if fit(i, e)[2] > tolerance:
                break
            end = e
        if not end:  # not even this bar (rubato inside it): beat by beat
            end = i + 1
            while end < ends[0] and fit(i, end + 1)[2] <= tolerance:
                end += 1
        t0, bpm, _ = fit(i, end)
        beat = int(number[i])
        while t0 < 0.0:  # its first beat would lie before the file: start on the next one
            t0 += 60.0 / bpm
            beat = beat % m + 1
        marks.append(TempoMark(start=t0, bpm=bpm, beat=beat))
        i = end
    return marks


def grid_beats(
    marks: list[TempoMark], end: float, beats_per_bar: int
) -> tuple[np.ndarray, np.ndarray]:
    """The beats (s) and their numbers in the bar that ``marks`` lay out up to ``end`` s, the
    way a player reads them: each mark's beats run until half a beat before the next mark."""
    m = max(int(beats_per_bar), 1)
    times: list[float] = []
    numbers: list[int] = []
    for i, mk in enumerate(marks):
        step = 60.0 / mk.bpm
        stop = marks[i + 1].start - 0.5 * step if i + 1 < len(marks) else end
        n = max(int(np.floor((stop - mk.start) / step + 1e-9)) + 1, 1)
        times.extend((mk.start + step * np.arange(n)).tolist())
        numbers.extend((mk.beat - 1 + j) % m + 1 for j in range(n))
    return np.asarray(times), np.asarray(numbers, dtype=int)


#: Tempo marks whose BPMs all lie within this share of the first are one steady tempo: the
#: grid's BPM is given (else only its bar line and meter, the analysis fitting the tempo).
STEADY_MARKS = 0.002


@dataclass(frozen=True)
class RekordboxGrid:
    """The beat grid a rekordbox collection holds for one file, as cratedig can take it.

    ``bpm`` None: a grid whose tempo moves (marks more than :data:`STEADY_MARKS` apart);
    ``downbeat``: the first bar line of the first mark at or after 0 s; ``beats_per_bar``
    None unless ``Metro`` is 3/4 or 4/4 (the meters the analysis knows); ``bar_lines``: every
    bar line the marks lay out (:func:`grid_beats`, up to the track's ``TotalTime``), so that a
    grid whose tempo moves can be compared bar line by bar line.
    """

    path: str
    bpm: float | None
    downbeat: float
    beats_per_bar: int | None
    marks: int
    bar_lines: tuple[float, ...] = ()


def read_grids(source: str | os.PathLike[str]) -> list[RekordboxGrid]:
    """The beat grids of a rekordbox XML collection (its ``COLLECTION/TRACK`` elements with
    ``TEMPO`` marks and a ``file://localhost`` location); tracks without either are skipped.

    The file is parsed by the standard library (expat >= 2.4 refuses entity expansion bombs and
    no external entity is fetched). Raises :class:`~cratedig.errors.ParameterError` for a file
    that is not such a collection, with the reason.
    """
    from cratedig.errors import ParameterError

    try:
        root = ET.parse(os.fspath(source)).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ParameterError(f"{source}: not a readable rekordbox XML collection ({exc})") from None
    if root.tag != "DJ_PLAYLISTS" or root.find("COLLECTION") is None:
        raise ParameterError(
            f"{source}: not a rekordbox XML collection (no DJ_PLAYLISTS/COLLECTION)"
        )
    out = []
    for t in root.iterfind("COLLECTION/TRACK"):
        url = t.get("Location") or ""
        marks = []
        for m in t.iterfind("TEMPO"):
            try:
                start, bpm = float(m.get("Inizio", "")), float(m.get("Bpm", ""))
                beat = int(m.get("Battito", "1"))
            except ValueError:
                continue
            if np.isfinite(start) and np.isfinite(bpm) and 30.0 <= bpm <= 300.0:
                marks.append((start, bpm, beat, m.get("Metro", "")))
        if not marks or not url.startswith(URL_PREFIX):
            continue
        marks.sort()
        start, bpm, beat, metro = marks[0]
        num = metro.split("/")[0].strip()
        meter = int(num) if num in ("3", "4") else None
        step = 60.0 / bpm
        # back from the mark's beat to the bar line it belongs to, then into the file
        bar = start - ((beat - 1) % (meter or 4)) * step
        while bar < 0.0:
            bar += (meter or 4) * step
        steady = all(abs(b / bpm - 1.0) <= STEADY_MARKS for _, b, _, _ in marks)
        try:
            total = float(t.get("TotalTime") or 0.0)
        except ValueError:
            total = 0.0
        end = max(total, marks[-1][0] + 60.0 / marks[-1][1])
        times, numbers = grid_beats(
            [TempoMark(start=a, bpm=b, beat=c) for a, b, c, _ in marks], end, meter or 4
        )
        out.append(
            RekordboxGrid(
                path=path_of_location(url),
                bpm=bpm if steady else None,
                downbeat=round(bar, 4),
                beats_per_bar=meter,
                marks=len(marks),
                bar_lines=tuple(round(float(x), 4) for x in times[numbers == 1] if x >= 0.0),
            )
        )
    return out


@dataclass
class RekordboxReport:
    """What :func:`export_rekordbox` wrote."""

    path: str
    tracks: int = 0
    files: int = 0
    cues: int = 0
    tempo_marks: int = 0
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "tracks": self.tracks,
            "files": self.files,
            "cues": self.cues,
            "tempo_marks": self.tempo_marks,
            "missing": self.missing,
        }


def track_element(
    analysis: TrackAnalysis, path: str, track_number: int, *, hot_cues: bool = False
) -> tuple[ET.Element, int, int]:
    """The ``TRACK`` element of one file: (element, tempo marks, cues)."""
    num, den = analysis.time_signature
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    doubts = analysis.doubts()
    comment = f"cratedig {analysis.track_id}: {analysis.camelot}" + (
        "; " + "; ".join(doubts) if doubts else ""
    )
    from cratedig.audio.tags import read_tags

    tags = read_tags(path)  # artist, title... as the file says (rekordbox shows these columns)
    named = {
        attr: xml_text(str(tags[k]))
        for k, attr in (("artist", "Artist"), ("album", "Album"), ("genre", "Genre"))
        if k in tags
    }
    el = ET.Element(
        "TRACK",
        {
            "TrackID": str(track_number),
            "Name": xml_text(str(tags.get("title") or Path(path).stem)),
            **named,
            "Kind": KINDS.get(Path(path).suffix.lower(), "Audio File"),
            "Size": str(size),
            "TotalTime": str(int(round(analysis.duration))),
            "SampleRate": str(int(analysis.sample_rate)),
            **({"Year": str(tags["year"])} if "year" in tags else {}),
            "AverageBpm": f"{analysis.tempo:.2f}",
            "Tonality": tonality(analysis.key),
            "Comments": xml_text(comment),
            "Location": location(path),
        },
    )
    marks = tempo_marks(analysis.beats, analysis.downbeats, num)
    for mk in marks:
        ET.SubElement(
            el,
            "TEMPO",
            {
                "Inizio": f"{mk.start:.3f}",
                "Bpm": f"{mk.bpm:.2f}",
                "Metro": f"{num}/{den}",
                "Battito": str(mk.beat),
            },
        )
    cues = 0
    for s in analysis.sections:
        name = xml_text(f"{s.label} {s.group}".strip())
        ET.SubElement(
            el,
            "POSITION_MARK",
            {"Name": name, "Type": "0", "Start": f"{s.start:.3f}", "Num": "-1"},
        )
        cues += 1
        if hot_cues and s.index < 8:
            r, g, bl = ROLE_COLOURS.get(s.label, (160, 100, 255))
            ET.SubElement(
                el,
                "POSITION_MARK",
                {
                    "Name": name,
                    "Type": "0",
                    "Start": f"{s.start:.3f}",
                    "Num": str(s.index),
                    "Red": str(r),
                    "Green": str(g),
                    "Blue": str(bl),
                },
            )
            cues += 1
    return el, len(marks), cues


def collection_xml(
    entries: Iterable[tuple[TrackAnalysis, str]], *, hot_cues: bool = False
) -> tuple[ET.ElementTree, RekordboxReport]:
    """The rekordbox XML document of ``(analysis, file path)`` pairs."""
    root = ET.Element("DJ_PLAYLISTS", {"Version": "1.0.0"})
    ET.SubElement(root, "PRODUCT", {"Name": "cratedig", "Version": __version__, "Company": ""})
    collection = ET.SubElement(root, "COLLECTION")
    report = RekordboxReport(path="")
    by_key: dict[tuple[int, str], list[int]] = {}
    names: dict[tuple[int, str], str] = {}
    ids: list[int] = []
    seen_tracks: set[str] = set()
    for analysis, path in entries:
        n = len(ids) + 1
        el, n_marks, n_cues = track_element(analysis, path, n, hot_cues=hot_cues)
        collection.append(el)
        ids.append(n)
        seen_tracks.add(analysis.track_id)
        report.tempo_marks += n_marks
        report.cues += n_cues
        wheel = camelot_parts(analysis.key)
        by_key.setdefault(wheel, []).append(n)
        names[wheel] = f"{analysis.camelot} {tonality(analysis.key)}"
    collection.set("Entries", str(len(ids)))
    report.files, report.tracks = len(ids), len(seen_tracks)

    playlists = ET.SubElement(root, "PLAYLISTS")
    top = ET.SubElement(playlists, "NODE", {"Type": "0", "Name": "ROOT", "Count": "1"})
    ours = ET.SubElement(top, "NODE", {"Type": "0", "Name": "cratedig", "Count": "2"})
    _playlist(ours, "all tracks", ids)
    keys = ET.SubElement(ours, "NODE", {"Type": "0", "Name": "by key", "Count": str(len(by_key))})
    for wheel in sorted(by_key):
        _playlist(keys, names[wheel], by_key[wheel])
    ET.indent(root)
    return ET.ElementTree(root), report


def _playlist(parent: ET.Element, name: str, track_ids: list[int]) -> None:
    node = ET.SubElement(
        parent, "NODE", {"Name": name, "Type": "1", "KeyType": "0", "Entries": str(len(track_ids))}
    )
    for i in track_ids:
        ET.SubElement(node, "TRACK", {"Key": str(i)})


def rekordbox_document(
    library: Library, *, hot_cues: bool = False
) -> tuple[bytes, RekordboxReport]:
    """The library as a rekordbox XML document (UTF-8 bytes), and its report.

    Every file of a track still on disk becomes a ``TRACK`` (a song held in two places is
    two entries, as in rekordbox); files gone are listed in the report's ``missing``.
    """
    with library.reader() as s:
        wanted = sorted(t.track_id for t in repo.query_tracks(s))
        paths = repo.paths_of(s, wanted)
    missing: list[str] = []

    def entries() -> Iterable[tuple[TrackAnalysis, str]]:
        for track_id in wanted:
            on_disk: list[str] = []
            for p in sorted(paths.get(track_id, [])):
                (on_disk if os.path.exists(p) else missing).append(p)
            if not on_disk:
                continue
            with library.reader() as s:
                analysis = repo.load_analysis(s, track_id)
            if analysis is None:
                continue
            for p in on_disk:
                yield analysis, os.path.abspath(p)

    tree, report = collection_xml(entries(), hot_cues=hot_cues)
    report.missing = missing
    return _serialise(tree), report


def _serialise(tree: ET.ElementTree) -> bytes:
    buf = io.BytesIO()
    tree.write(buf, encoding="UTF-8", xml_declaration=True)
    return buf.getvalue()


def write_collection(
    entries: Iterable[tuple[TrackAnalysis, str]],
    out: str | os.PathLike[str],
    *,
    hot_cues: bool = False,
) -> RekordboxReport:
    """Write ``(analysis, file path)`` pairs as a rekordbox XML collection to ``out`` (a file,
    replaced atomically; a symbolic link, written through; a FIFO or ``-``). Used by
    ``cratedig analyze --rekordbox``, which needs no library."""
    tree, report = collection_xml(entries, hot_cues=hot_cues)
    with output_path(out) as tmp:
        Path(tmp).write_bytes(_serialise(tree))
    report.path = os.fsdecode(out)
    return report


def export_rekordbox(
    library: Library,
    out: str | os.PathLike[str],
    *,
    hot_cues: bool = False,
) -> RekordboxReport:
    """Write :func:`rekordbox_document` to ``out``: a file (replaced atomically), a symbolic
    link (written through), a FIFO or ``-`` (standard output).

    Raises
    ------
    OutputError
        ``out`` is a folder, or its folder does not exist (checked before any work).
    """
    check_output(out, example="rekordbox.xml")
    data, report = rekordbox_document(library, hot_cues=hot_cues)
    with output_path(out) as tmp:
        Path(tmp).write_bytes(data)
    report.path = os.fsdecode(out)
    return report
