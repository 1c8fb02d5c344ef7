"""The library's duplicates: one recording held in several files (``cratedig duplicates``).

A DJ's library collects the same song more than once: the FLAC and the MP3, a WAV bounce, a
store's AAC, the track on two compilations. Each is a track of its own (their audio differs),
so crates fill with copies and a set can play one song twice. ``match`` already leaves the
query's own recording out (:mod:`cratedig.analysis.fingerprint`); this finds every group of
copies in the library, and names the copy to keep: the best-sounding one by the input quality
that ``ingest`` measured (lossless and not an upsampled lossy file, then the widest band, the
highest bit rate and sample rate).

Comparing every two tracks' fingerprints would take 50 million comparisons for 10 000 tracks.
Copies of one recording last as long (within :data:`DURATION_TOLERANCE` seconds) and read the
same tempo (within :data:`TEMPO_TOLERANCE`, or an octave of it), so only such pairs are
compared.

Edits are listed apart: a radio edit and the extended mix, a re-edit, a loop cut from a song
(one holds the other piece by piece, :func:`~cratedig.analysis.fingerprint.edit_overlap`).
A DJ keeps both, so neither is a copy to spare, but ``match`` never pairs them. Their lengths
differ, so candidates come from a look-up instead (:func:`edit_candidates`): pairs of frames a
few frames apart, as 30-bit keys, that two tracks share exactly at one offset (Wang 2003,
the look-up behind Shazam, on our own frames); only such pairs are compared.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cratedig.analysis.fingerprint import SOUNDING as _SOUNDING
from cratedig.analysis.fingerprint import Overlap, near_ber, same_recording

#: Seconds by which two copies of a recording may differ in length (encoder padding, a
#: trimmed silence).
DURATION_TOLERANCE = 2.0
#: Relative tempo difference within which two tracks may be copies (or an octave of it: an
#: 8 kHz copy may read the other octave).
TEMPO_TOLERANCE = 0.02
#: A pair whose quick look (:func:`~cratedig.analysis.fingerprint.near_ber`, offsets within
#: the length tolerance and a second) reads a higher bit error rate is no copy: unrelated
#: music reads about 0.5, copies under 0.3.
QUICK_REJECT_BER = 0.4
#: "Full band" is full for the file's sample rate and at least this wide (Hz).
FULL_BAND_MIN_HZ = 15000.0
#: Edit look-up (:func:`edit_candidates`): a key is two sounding frames this many frames
#: apart (30 bits); one key in EDIT_KEEP is kept, chosen by its value (so every copy keeps the
#: same ones wherever its frames fall); a track's loop repeats its keys, of which the first
#: EDIT_PER_TRACK are looked up; a key held by more than EDIT_KEY_CAP tracks says nothing; a
#: pair of tracks sharing EDIT_MIN_VOTES kept keys at one offset (within a frame) is compared.
#: An MP3 keeps about a quarter of its keys exact: a shared minute gives about 80 votes.
EDIT_KEY_GAP = 4
EDIT_KEEP = 4
EDIT_PER_TRACK = 4
EDIT_KEY_CAP = 16
EDIT_MIN_VOTES = 8
#: A shorter track found in a longer one over less than this share of the longer's length is
#: heard inside it (a track in a DJ mix, a loop in its song), not an edit of it (an extended
#: mix is rarely over twice its radio edit).
INSIDE_SHARE = 0.4


@dataclass(frozen=True)
class Copy:
    """One track of a group: its id, path, and what its quality says."""

    track_id: str
    path: str
    format: str
    sample_rate: int
    duration: float
    quality: dict[str, Any]

    @property
    def summary(self) -> str:
        """ "FLAC, lossless, full band" / "MP3, 128 kbps, band-limited to 16.0 kHz"."""
        q = self.quality or {}
        parts = [self.format]
        declared = q.get("declared")
        if declared:
            parts.append(str(declared))
        if q.get("fake_lossless"):
            parts.append("lossy inside")
        bw = q.get("bandwidth_hz")
        if bw is not None:
            # full for its rate and for an ear: an 8 kHz file's 4 kHz is no full band
            full = float(bw) >= max(0.95 * self.sample_rate / 2, FULL_BAND_MIN_HZ)
            parts.append("full band" if full else f"band-limited to {float(bw) / 1000:.1f} kHz")
        return ", ".join(parts)

    def rank(self) -> tuple[float, ...]:
        """Larger is the better copy to keep."""
        q = self.quality or {}
        lossless = q.get("declared") == "lossless" and not q.get("fake_lossless")
        return (
            float(lossless),
            round(float(q.get("bandwidth_hz") or 0.0) / 500.0),
            float(q.get("bitrate_kbps") or 0.0) if not lossless else 0.0,
            float(self.sample_rate),
            -float(len(q.get("flags") or [])),
        )


@dataclass
class Group:
    """Copies of one recording, the one to keep first."""

    copies: list[Copy]
    #: (track id, track id) -> where their fingerprints agree, for each pair found.
    evidence: dict[tuple[str, str], Overlap] = field(default_factory=dict)

    @property
    def keep(self) -> Copy:
        return self.copies[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "keep": self.keep.track_id,
            "copies": [
                {
                    "track_id": c.track_id,
                    "path": c.path,
                    "format": c.format,
                    "sample_rate": c.sample_rate,
                    "duration": round(c.duration, 3),
                    "quality": c.summary,
                }
                for c in self.copies
            ],
            "pairs": [
                {"tracks": list(k), "ber": o.ber, "offset": o.offset, "seconds": o.seconds}
                for k, o in self.evidence.items()
            ],
        }


def _maybe_copies(t1: float, t2: float) -> bool:
    r = max(t1, t2) / max(min(t1, t2), 1e-9)
    return any(abs(r / k - 1.0) <= TEMPO_TOLERANCE for k in (1.0, 2.0))


def _copy_overlap(a: np.ndarray, b: np.ndarray) -> Overlap | None:
    """Where two fingerprints of one length are the same recording at one offset: the quick
    look, then the whole comparison (None: not copies; an edit of the same length is listed
    with the edits)."""
    if near_ber(a, b, max_offset=DURATION_TOLERANCE + 1.0) > QUICK_REJECT_BER:
        return None
    o = same_recording(a, b)
    return o if o is not None and not o.edit else None


def _keys(fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kept 30-bit keys, their frames) of one fingerprint."""
    fp = np.asarray(fp, dtype=np.uint16)
    if len(fp) <= EDIT_KEY_GAP:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    a, b = fp[:-EDIT_KEY_GAP], fp[EDIT_KEY_GAP:]
    key = ((a & 0x7FFF).astype(np.int64) << 15) | (b & 0x7FFF).astype(np.int64)
    mixed = (key * 0x9E3779B1) >> 11  # which keys to keep: by value, spread over all bits
    keep = ((a & b & _SOUNDING) > 0) & (mixed % EDIT_KEEP == 0)
    return key[keep], np.flatnonzero(keep)


def edit_candidates(
    prints: Iterable[np.ndarray], among: Collection[int] | None = None
) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of ``prints`` that share :data:`EDIT_MIN_VOTES` or more
    kept keys at one offset (within a frame): the only pairs worth comparing for an edit.
    With ``among`` (indices), only pairs with one of those tracks, and only the keys those
    tracks hold are kept from the others as they stream by (an ingest's new files against the
    library).

    >>> rng = np.random.default_rng(4)
    >>> x = rng.integers(0, 1 << 16, 3000).astype(np.uint16) | _SOUNDING
    >>> y = rng.integers(0, 1 << 16, 3000).astype(np.uint16) | _SOUNDING
    >>> edit_candidates([x, y, np.r_[x[:800], x[2000:]]])
    [(0, 2)]
    >>> edit_candidates([x, y, np.r_[x[:800], x[2000:]]], among=[1])
    []
    """
    prints = list(prints)
    wanted: np.ndarray | None = None
    if among is not None:
        focus = sorted(set(among))
        if not focus:
            return []
        wanted = np.unique(np.concatenate([_keys(prints[i])[0] for i in focus]))
    parts = []
    for fp in prints:
        k, t = _keys(fp)
        if wanted is not None:
            hit = np.isin(k, wanted, assume_unique=False)
            k, t = k[hit], t[hit]
        parts.append((k, t))
    keys = np.concatenate([k for k, _ in parts]) if parts else np.zeros(0, dtype=np.int64)
    if len(keys) < 2:
        return []
    owner = np.concatenate([np.full(len(k), i, dtype=np.int64) for i, (k, _) in enumerate(parts)])
    frame = np.concatenate([t for _, t in parts])
    order = np.lexsort((frame, owner, keys))
    keys, owner, frame = keys[order], owner[order], frame[order]
    # each track's first EDIT_PER_TRACK entries of a key (a loop repeats its frames)
    run = np.r_[True, (keys[1:] != keys[:-1]) | (owner[1:] != owner[:-1])]
    starts = np.flatnonzero(run)
    rank = np.arange(len(keys)) - starts[np.cumsum(run) - 1]
    keep = rank < EDIT_PER_TRACK
    keys, owner, frame, run = keys[keep], owner[keep], frame[keep], run[keep]
    # keys held by 2..EDIT_KEY_CAP tracks
    first = np.r_[True, keys[1:] != keys[:-1]]
    key_id = np.cumsum(first) - 1
    holders = np.bincount(key_id, weights=run.astype(np.float64))[key_id]
    ok = (holders >= 2) & (holders <= EDIT_KEY_CAP)
    keys, owner, frame = keys[ok], owner[ok], frame[ok]
    n = len(prints)
    codes = []
    for d in range(1, EDIT_KEY_CAP * EDIT_PER_TRACK):  # the most entries a key keeps
        same = (keys[:-d] == keys[d:]) & (owner[:-d] != owner[d:])
        if not same.any():
            if d > 1 and not (keys[:-d] == keys[d:]).any():
                break
            continue
        i, j = owner[:-d][same], owner[d:][same]
        ti, tj = frame[:-d][same], frame[d:][same]
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        dt = np.where(i < j, ti - tj, tj - ti)
        codes.append(((lo * n + hi) << 21) + (dt + (1 << 20)))
    if not codes:
        return []
    code, votes = np.unique(np.concatenate(codes), return_counts=True)
    # an offset and the next one pool their votes (the same audio falls a frame apart)
    nxt = np.r_[code[1:] == code[:-1] + 1, False]
    pooled = votes + np.where(nxt, np.r_[votes[1:], 0], 0)
    pair = np.unique(code[pooled >= EDIT_MIN_VOTES] >> 21)
    out = [(int(p // n), int(p % n)) for p in pair]
    if among is not None:
        focus_set = set(among)
        out = [(i, j) for i, j in out if i in focus_set or j in focus_set]
    return out


def find_groups(
    tracks: list[dict[str, Any]],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Group], int]:
    """Groups of copies among ``tracks`` (dicts with ``track_id``, ``path``, ``format``,
    ``sample_rate``, ``duration``, ``tempo``, ``quality`` and ``fingerprint``, a uint16 array;
    tracks without one are skipped), and the number of fingerprint comparisons made.

    ``progress(done, total)`` is called as tracks are worked through.
    """
    rows = sorted((t for t in tracks if len(t["fingerprint"])), key=lambda t: t["duration"])
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    evidence: dict[tuple[int, int], Overlap] = {}
    compared = 0
    durations = np.array([t["duration"] for t in rows])
    for i, a in enumerate(rows):
        hi = int(np.searchsorted(durations, a["duration"] + DURATION_TOLERANCE, side="right"))
        for j in range(i + 1, hi):
            b = rows[j]
            if not _maybe_copies(float(a["tempo"]), float(b["tempo"])):
                continue
            compared += 1
            o = _copy_overlap(a["fingerprint"], b["fingerprint"])
            if o is not None:
                evidence[(i, j)] = o
                parent[find(j)] = find(i)
        if progress is not None:
            progress(i + 1, len(rows))
    members: dict[int, list[int]] = {}
    for i in range(len(rows)):
        members.setdefault(find(i), []).append(i)
    groups = []
    for idx in members.values():
        if len(idx) < 2:
            continue
        copies = [_copy_of(rows[i]) for i in idx]
        copies.sort(key=lambda c: (tuple(-x for x in c.rank()), c.path))
        ids = set(idx)
        groups.append(
            Group(
                copies=copies,
                evidence={
                    (rows[i]["track_id"], rows[j]["track_id"]): o
                    for (i, j), o in evidence.items()
                    if i in ids
                },
            )
        )
    groups.sort(key=lambda g: g.keep.path)
    return groups, compared


def _copy_of(row: dict[str, Any]) -> Copy:
    return Copy(
        track_id=row["track_id"],
        path=row["path"],
        format=row["format"],
        sample_rate=int(row["sample_rate"]),
        duration=float(row["duration"]),
        quality=dict(row.get("quality") or {}),
    )


@dataclass(frozen=True)
class Edit:
    """Two tracks of one recording, one an edit of the other (a radio edit and the extended
    mix): ``shorter`` is found in ``longer`` piece by piece. Both are kept; ``match`` never
    pairs them. Where the shorter fills only a small part of the longer (under
    :data:`INSIDE_SHARE`: a track in a DJ mix, a loop in its song), it is ``inside`` it rather
    than an edit of it."""

    shorter: Copy
    longer: Copy
    overlap: Overlap

    @property
    def inside(self) -> bool:
        return self.overlap.seconds < INSIDE_SHARE * self.longer.duration

    def to_json(self) -> dict[str, Any]:
        return {
            "shorter": {"track_id": self.shorter.track_id, "path": self.shorter.path,
                        "duration": round(self.shorter.duration, 3)},
            "longer": {"track_id": self.longer.track_id, "path": self.longer.path,
                       "duration": round(self.longer.duration, 3)},
            "ber": self.overlap.ber,
            "seconds": self.overlap.seconds,
            "pieces": self.overlap.pieces,
            "inside": self.inside,
        }  # fmt: skip


def find_edits(
    tracks: list[dict[str, Any]], groups: list[Group] | None = None
) -> tuple[list[Edit], int]:
    """Pairs of ``tracks`` (as :func:`find_groups` takes them) of which one is an edit of the
    other, and the number of fingerprint comparisons made. Candidates come from
    :func:`edit_candidates`; two tracks of one group of copies (``groups``) are no edit, and
    of a group only its first copy (the one to keep) is looked at."""
    spare = {c.track_id for g in groups or [] for c in g.copies[1:]}
    rows = [t for t in tracks if len(t["fingerprint"]) and t["track_id"] not in spare]
    edits = []
    pairs = edit_candidates([t["fingerprint"] for t in rows])
    for i, j in pairs:
        o = same_recording(rows[i]["fingerprint"], rows[j]["fingerprint"])
        if o is None:
            continue
        a, b = sorted((rows[i], rows[j]), key=lambda t: (t["duration"], t["path"]))
        edits.append(Edit(_copy_of(a), _copy_of(b), o))
    edits.sort(key=lambda e: (e.longer.path, e.shorter.path))
    return edits, len(pairs)


def versions_of(edits: list[Edit]) -> list[list[Copy]]:
    """The recordings held in several edited versions: tracks joined by edits (not by one held
    inside another: a DJ mix holds tracks of many recordings), each family shortest first.

    >>> c = lambda i, d: Copy(i, f"/m/{i}", "FLAC", 44100, d, {})
    >>> o = Overlap(0.02, 0.0, 200.0, 2)
    >>> radio, orig, ext, mix = c("r", 210.0), c("o", 300.0), c("e", 400.0), c("m", 3600.0)
    >>> fams = versions_of([Edit(radio, orig, o), Edit(orig, ext, o), Edit(orig, mix, o)])
    >>> [[x.track_id for x in f] for f in fams]
    [['r', 'o', 'e']]
    """
    parent: dict[str, str] = {}
    copies: dict[str, Copy] = {}

    def find(t: str) -> str:
        while parent.setdefault(t, t) != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for e in edits:
        if e.inside:
            continue
        copies[e.shorter.track_id], copies[e.longer.track_id] = e.shorter, e.longer
        parent[find(e.shorter.track_id)] = find(e.longer.track_id)
    families: dict[str, list[Copy]] = {}
    for t, c in copies.items():
        families.setdefault(find(t), []).append(c)
    out = [sorted(f, key=lambda c: (c.duration, c.path)) for f in families.values()]
    return sorted(out, key=lambda f: f[0].path)


@dataclass
class Duplicates:
    """What :func:`library_duplicates` found."""

    groups: list[Group]
    tracks: int  # tracks with a fingerprint
    compared: int  # pairs of them compared
    without_fingerprint: int  # analysed before analysis v31
    edits: list[Edit] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "tracks": self.tracks,
            "compared": self.compared,
            "without_fingerprint": self.without_fingerprint,
            "groups": [g.to_json() for g in self.groups],
            "edits": [e.to_json() for e in self.edits],
            # the recordings held in several edited versions, each shortest first
            "versions": [
                [{"track_id": c.track_id, "path": c.path, "duration": round(c.duration, 3)}
                 for c in family]
                for family in versions_of(self.edits)
            ],
        }  # fmt: skip


def library_duplicates(library: Any) -> Duplicates:
    """The groups of copies, and the edits, in a :class:`cratedig.library.db.Library`."""
    from cratedig.library import repository as repo

    with library.reader() as s:
        tracks = repo.fingerprinted_tracks(s)
        unprinted = repo.unfingerprinted_count(s)
    groups, compared = find_groups(tracks)
    edits, more = find_edits(tracks, groups)
    return Duplicates(groups, len(tracks), compared + more, unprinted, edits)


def copies_of_run(library: Any, ingest_id: str) -> list[dict[str, Any]]:
    """The tracks an ingest run (``ingest_id``) stored that are another file of a recording
    the library holds: ``{"path", "track_id", "same_as", "same_as_path", "ber", "edit"}``
    each, for the ingest's report ("you have this one already"). Copies are candidates of one
    length and tempo, their fingerprints read from the database as needed; edits (``"edit":
    true``: a radio edit of a held extended mix...) come from the look-up of the new tracks'
    keys in every fingerprint (:func:`edit_candidates` with ``among``)."""
    from sqlalchemy import select

    from cratedig.library import repository as repo
    from cratedig.library.schema import TrackRow

    with library.reader() as s:
        rows = s.execute(
            select(TrackRow.id, TrackRow.duration, TrackRow.tempo, TrackRow.ingest_id).where(
                TrackRow.fingerprint.is_not(None), TrackRow.status == "ok"
            )
        ).all()
        new = [r for r in rows if r.ingest_id == ingest_id]
        if not new:
            return []
        order = sorted(rows, key=lambda r: r.duration)
        durations = np.array([r.duration for r in order])
        pairs: list[tuple[str, str]] = []
        for r in new:
            lo = int(np.searchsorted(durations, r.duration - DURATION_TOLERANCE, side="left"))
            hi = int(np.searchsorted(durations, r.duration + DURATION_TOLERANCE, side="right"))
            for o in order[lo:hi]:
                if o.id == r.id or not _maybe_copies(float(r.tempo), float(o.tempo)):
                    continue
                if o.ingest_id == ingest_id and o.id < r.id:
                    continue  # two new tracks: judged once
                pairs.append((r.id, o.id))
        ids = [r.id for r in rows]
        length = {r.id: float(r.duration) for r in rows}
        prints = repo.track_fingerprints(s, ids)
        ids = [t for t in ids if t in prints]
        is_new = {r.id for r in new}
        edits = [
            (ids[i], ids[j]) if ids[i] in is_new else (ids[j], ids[i])
            for i, j in edit_candidates(
                [prints[t] for t in ids], among=[k for k, t in enumerate(ids) if t in is_new]
            )
        ]
        seen = {frozenset(p) for p in pairs}
        edits = [p for p in edits if frozenset(p) not in seen]
        paths = repo.paths_of(s, {t for p in pairs + edits for t in p})
    out = []
    for (a, b), edit in [(p, False) for p in pairs] + [(p, True) for p in edits]:
        fa, fb = prints.get(a), prints.get(b)
        if fa is None or fb is None:
            continue
        o = same_recording(fa, fb) if edit else _copy_overlap(fa, fb)
        if o is not None:
            out.append(
                {
                    "track_id": a,
                    "path": sorted(paths.get(a) or [""])[0],
                    "same_as": b,
                    "same_as_path": sorted(paths.get(b) or [""])[0],
                    "ber": o.ber,
                    # one recording edited (not a copy): found piece by piece, or of another
                    # length
                    "edit": o.edit or (edit and abs(length[a] - length[b]) > DURATION_TOLERANCE),
                }
            )
    return out
