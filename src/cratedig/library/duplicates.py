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
compared. An edit of another length (an intro cut) is not looked for here; ``match`` still
leaves it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    """Where two fingerprints of one length are the same recording: the quick look, then the
    whole comparison (None: not copies)."""
    if near_ber(a, b, max_offset=DURATION_TOLERANCE + 1.0) > QUICK_REJECT_BER:
        return None
    return same_recording(a, b)


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
        copies = [
            Copy(
                track_id=rows[i]["track_id"],
                path=rows[i]["path"],
                format=rows[i]["format"],
                sample_rate=int(rows[i]["sample_rate"]),
                duration=float(rows[i]["duration"]),
                quality=dict(rows[i].get("quality") or {}),
            )
            for i in idx
        ]
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


@dataclass
class Duplicates:
    """What :func:`library_duplicates` found."""

    groups: list[Group]
    tracks: int  # tracks with a fingerprint
    compared: int  # pairs of them compared
    without_fingerprint: int  # analysed before analysis v31

    def to_json(self) -> dict[str, Any]:
        return {
            "tracks": self.tracks,
            "compared": self.compared,
            "without_fingerprint": self.without_fingerprint,
            "groups": [g.to_json() for g in self.groups],
        }


def library_duplicates(library: Any) -> Duplicates:
    """The groups of copies in a :class:`cratedig.library.db.Library`."""
    from cratedig.library import repository as repo

    with library.reader() as s:
        tracks = repo.fingerprinted_tracks(s)
        unprinted = repo.unfingerprinted_count(s)
    groups, compared = find_groups(tracks)
    return Duplicates(groups, len(tracks), compared, unprinted)


def copies_of_run(library: Any, ingest_id: str) -> list[dict[str, Any]]:
    """The tracks an ingest run (``ingest_id``) stored that are another file of a recording
    the library holds: ``{"path", "track_id", "same_as", "same_as_path", "ber"}`` each, for
    the ingest's report ("you have this one already"). Only candidates of one length and
    tempo are compared, their fingerprints read from the database as needed."""
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
        if not pairs:
            return []
        prints = repo.track_fingerprints(s, {t for p in pairs for t in p})
        paths = repo.paths_of(s, {t for p in pairs for t in p})
    out = []
    for a, b in pairs:
        fa, fb = prints.get(a), prints.get(b)
        o = None if fa is None or fb is None else _copy_overlap(fa, fb)
        if o is not None:
            out.append(
                {
                    "track_id": a,
                    "path": sorted(paths.get(a) or [""])[0],
                    "same_as": b,
                    "same_as_path": sorted(paths.get(b) or [""])[0],
                    "ber": o.ber,
                }
            )
    return out
