"""Self-supervised training pairs from stems: labelled layerings without one human rating.

The stems of one song at the same bars are known to layer well: a **positive**. The same
stems moved or bent are known not to (the idea behind Neural Loop Combiner, Chen et al.,
ISMIR 2020, and COCOLA, Ciranni et al., 2024). From each song with stems, split into a query
layer (the vocal or lead) and a partner layer (the sum of the other stems):

- ``same bars`` (label 1): the partner's phrase at the query's bars;
- ``bar shift`` / ``half-bar shift`` (label 0): the partner delayed by one bar or half a bar;
- ``+1 st`` / ``+5 st`` / ``+6 st`` (label 0): the partner transposed by a clashing semitone,
  a fourth (its key is then a fifth away: the key rule calls it fine) and a tritone
  (Rubber Band, through pedalboard);
- ``other bars`` (label 0): the song's own partner at other bars whose chords differ from the
  partner's at the query's bars (bar chroma correlating under :data:`SAME_CHORDS` over the
  bars they share; a repeat under the same chords is no negative). Same sound, same tempo, same
  key: only the chords under the lead tell it from the positive. It is what the true partner
  loses to most after other songs on real stems (issue 10, ``bench/retrieval_diagnose.py``),
  and without it the pairs never show a ranker that the harmonic fit, not "sounds like this
  song", decides the top of a list;
- ``other song`` (label 0): another song's partner phrase whose tempo fits within the stretch
  limit (1:1, 2:1 or 1:2), so the rules alone cannot reject it.

Every variant is cut on the beat grid found on the song's full mix (a lone vocal has too few
onsets for a reliable grid), with the analysis' own feature building blocks, so the pairs see
the features the library stores. ``match`` scores the pairs; ``learn`` never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cratedig.analysis import features as feat
from cratedig.analysis.frontend import compute_frontend
from cratedig.analysis.pipeline import SEGMENT_KEY_PRIOR, analyze_signal
from cratedig.analysis.records import Segment, SegmentFeatures
from cratedig.analysis.rhythm import ONSET_LAG
from cratedig.analysis.tonal import chroma_from_frontend, estimate_key
from cratedig.errors import ParameterError
from cratedig.theory import TEMPO_RATIOS

#: Stems that make the query layer, in order of preference (the first one present is used).
QUERY_STEMS: tuple[str, ...] = ("vocals", "lead", "vocal")
#: Negative kinds, each with how the partner audio is bent (semitones, delay in bars).
NEGATIVES: dict[str, tuple[float, float]] = {
    "bar shift": (0.0, 1.0),
    "half-bar shift": (0.0, 0.5),
    "+1 st": (1.0, 0.0),
    "+5 st": (5.0, 0.0),
    "+6 st": (6.0, 0.0),
}
POSITIVE = "same bars"
OTHER_BARS = "other bars"
OTHER_SONG = "other song"
KINDS: tuple[str, ...] = (POSITIVE, *NEGATIVES, OTHER_BARS, OTHER_SONG)
#: Bar-chroma correlation (mean over the bars two phrases share) at and above which a phrase of
#: the partner at other bars plays the same chords as the positive: no ``other bars`` negative.
SAME_CHORDS = 0.9
#: A query phrase counts when its layer is this loud (dBFS RMS) or louder: a silent vocal
#: phrase has nothing to pair.
MIN_QUERY_DB = -45.0


@dataclass
class Grid:
    """Bar bounds (seconds), phrases ``(first bar, bars)``, meter, tempo and tuning of a mix."""

    starts: np.ndarray
    ends: np.ndarray
    phrases: list[tuple[int, int]]
    meter: int
    tempo: float
    tuning: float


@dataclass
class StemPair:
    """A query phrase, a candidate phrase and whether they are known to layer well."""

    query: Segment
    candidate: Segment
    label: int
    kind: str
    song: str


def grid_of_mix(y: np.ndarray, *, sr: int) -> Grid:
    """The bar grid of a full mix (:func:`cratedig.analysis.pipeline.analyze_signal`)."""
    a = analyze_signal(y, sr=sr, track_id="mix")
    starts = np.asarray(a.downbeats, np.float64)
    if len(starts) < 2 or not a.segments:
        raise ParameterError("the mix has fewer than two bars: no phrases to pair")
    bar = a.time_signature[0] * 60.0 / a.tempo
    ends = np.r_[starts[1:], min(starts[-1] + bar, len(y) / sr)]
    return Grid(
        starts,
        ends,
        [(s.bar, s.bars) for s in a.segments],
        a.time_signature[0],
        a.tempo,
        a.tuning,
    )


def segments_on_grid(
    y: np.ndarray, *, sr: int, grid: Grid, track_id: str, scale: float = 1.0
) -> list[Segment]:
    """Phrase segments of ``y`` cut on ``grid`` (as the analysis pipeline cuts its own).

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
    sr : int > 0
    grid : Grid
    track_id : str
        Prefix of the segment ids (``<track_id>_<n>``).
    scale : float > 0
        ``y`` is the grid's audio played ``scale`` times faster (a time-stretched copy): bar
        times are divided by it and the tempo multiplied.
    """
    fe = compute_frontend(y, sr=sr)
    chroma = chroma_from_frontend(fe, tuning=grid.tuning)
    bass = chroma_from_frontend(fe, tuning=grid.tuning, bass=True)
    starts, ends = grid.starts / scale, grid.ends / scale
    bchroma = feat.bar_chroma(chroma, fe.tonal_fps, starts, ends)
    frac = np.arange(grid.meter) / grid.meter
    span = (ends - starts)[:, None]
    beat_s = (starts[:, None] + span * frac).ravel()
    beat_e = (starts[:, None] + span * (frac + 1.0 / grid.meter)).ravel()
    beat_chroma = feat.bar_chroma(chroma, fe.tonal_fps, beat_s, beat_e)
    rhythm_rows = feat.rhythm_pattern(fe, starts, ends, grid.meter, lag=ONSET_LAG)
    seg_s = np.array([starts[b] for b, _ in grid.phrases])
    seg_e = np.array([ends[b + n - 1] for b, n in grid.phrases])
    seg_db = feat.rms_db(fe, seg_s, seg_e)
    loudest = float(seg_db.max())
    prior = np.zeros(24)
    prior[int(np.argmax(estimate_key(chroma, bass).scores))] = SEGMENT_KEY_PRIOR
    out = []
    for i, (b0, n) in enumerate(grid.phrases):
        lo = int(np.floor(seg_s[i] * fe.tonal_fps))
        hi = max(int(np.ceil(seg_e[i] * fe.tonal_fps)), lo + 1)
        k = estimate_key(chroma[lo:hi], bass[lo:hi], prior=prior)
        rhythm = rhythm_rows[b0 : b0 + n].mean(axis=0)
        top = float(rhythm.max())
        out.append(
            Segment(
                id=f"{track_id}_{i}",
                track_id=track_id,
                index=i,
                level="phrase",
                start=float(seg_s[i]),
                end=float(seg_e[i]),
                bar=int(b0),
                bars=int(n),
                label="",
                tempo=grid.tempo * scale,
                key=k.key,
                features=SegmentFeatures(
                    chroma=bchroma[b0 : b0 + n],
                    beat_chroma=beat_chroma[b0 * grid.meter : (b0 + n) * grid.meter],
                    rhythm=rhythm / top if top > 0 else rhythm,
                    spectral_balance=feat.spectral_balance(fe, float(seg_s[i]), float(seg_e[i])),
                    energy=float(10 ** ((seg_db[i] - loudest) / 20.0)),
                    rms_db=float(seg_db[i]),
                    loudness=0.0,
                    key_clarity=k.clarity,
                ),
            )
        )
    return out


def split_stems(stems: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(query layer, partner layer): the vocal or lead stem, and the sum of the others.

    Raises
    ------
    ParameterError
        No vocal/lead stem, or nothing else to layer it with.
    """
    name = next((s for s in QUERY_STEMS if s in stems), None)
    others = [np.asarray(y, np.float32) for s, y in stems.items() if s != name]
    if name is None or not others:
        raise ParameterError(
            f"stems {sorted(stems)}: need one of {list(QUERY_STEMS)} and at least one other"
        )
    n = min(len(stems[name]), *(len(y) for y in others))
    return np.asarray(stems[name][:n], np.float32), np.sum([y[:n] for y in others], axis=0)


def _bend(y: np.ndarray, *, sr: int, semitones: float, delay_s: float) -> np.ndarray:
    if semitones:
        from pedalboard import time_stretch

        y = time_stretch(y[None], sr, stretch_factor=1.0, pitch_shift_in_semitones=semitones)[0]
    if delay_s:
        d = int(round(delay_s * sr))
        y = np.r_[np.zeros(d, np.float32), y][: len(y)]
    return np.asarray(y, np.float32)


def song_pairs(
    stems: Mapping[str, np.ndarray],
    *,
    sr: int,
    song: str,
    negatives: Sequence[str] = tuple(NEGATIVES),
) -> tuple[list[StemPair], list[Segment], list[Segment]]:
    """Positive and bent-negative pairs of one song -> (pairs, query phrases, partner phrases).

    The partner phrases (unbent) are returned so that :func:`stem_pairs` can pair them with
    other songs' queries.
    """
    unknown = set(negatives) - set(NEGATIVES)
    if unknown:
        raise ParameterError(f"unknown negative kinds {sorted(unknown)}; known: {list(NEGATIVES)}")
    query_y, partner_y = split_stems(stems)
    grid = grid_of_mix(query_y + partner_y, sr=sr)
    queries = segments_on_grid(query_y, sr=sr, grid=grid, track_id=f"{song}-query")
    partners = segments_on_grid(partner_y, sr=sr, grid=grid, track_id=f"{song}-partner")
    bar_s = grid.meter * 60.0 / grid.tempo
    bent = {
        kind: segments_on_grid(
            _bend(partner_y, sr=sr, semitones=NEGATIVES[kind][0], delay_s=NEGATIVES[kind][1] * bar_s),
            sr=sr,
            grid=grid,
            track_id=f"{song}-{kind.replace(' ', '_')}",
        )
        for kind in negatives
    }  # fmt: skip
    active = [i for i, q in enumerate(queries) if q.features.rms_db >= MIN_QUERY_DB]
    pairs = []
    for i in active:
        pairs.append(StemPair(queries[i], partners[i], 1, POSITIVE, song))
        pairs += [StemPair(queries[i], bent[k][i], 0, k, song) for k in negatives]
        pairs += [
            StemPair(queries[i], p, 0, OTHER_BARS, song)
            for j, p in enumerate(partners)
            if j != i and chord_similarity(partners[i], p) < SAME_CHORDS
        ]
    return pairs, [queries[i] for i in active], partners


def chord_similarity(a: Segment, b: Segment) -> float:
    """Mean correlation of the bar chroma of two phrases over the bars they share (from their
    first bars); 1.0 where a bar is flat in both (silence under silence), 0 where in one."""
    n = min(len(a.features.chroma), len(b.features.chroma))
    if n == 0:
        return 0.0
    x = np.asarray(a.features.chroma[:n], np.float64)
    z = np.asarray(b.features.chroma[:n], np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    z = z - z.mean(axis=1, keepdims=True)
    nx, nz = np.linalg.norm(x, axis=1), np.linalg.norm(z, axis=1)
    flat_x, flat_z = nx < 1e-9, nz < 1e-9
    r = np.where(
        flat_x | flat_z,
        (flat_x & flat_z).astype(np.float64),
        (x * z).sum(axis=1) / np.maximum(nx * nz, 1e-12),
    )
    return float(r.mean())


def tempo_fits(a: float, b: float, *, max_stretch: float = 0.08) -> bool:
    """Whether tempo ``b`` fits ``a`` at 1:1, 2:1 or 1:2 within ``max_stretch``."""
    return any(abs(a / (b * r) - 1.0) <= max_stretch for r in TEMPO_RATIOS)


def stem_pairs(
    songs: Mapping[str, Mapping[str, np.ndarray]],
    *,
    sr: int,
    others_per_query: int = 8,
    max_stretch: float = 0.08,
    seed: int = 0,
) -> list[StemPair]:
    """Labelled pairs from many songs' stems: bent negatives and other-song negatives.

    Parameters
    ----------
    songs : mapping of song name to (mapping of stem name to np.ndarray [shape=(n,)])
        Each song's stems at ``sr``, sample-aligned.
    sr : int > 0
    others_per_query : int >= 0
        Other-song partner phrases drawn per query phrase (among those whose tempo fits).
    max_stretch : float
        Tempo limit that other-song negatives must pass (the match rule).
    seed : int
        Draws of the other-song negatives.

    Returns
    -------
    list of StemPair
        About ``phrases * (1 + 5 + others_per_query)`` pairs plus the ``other bars`` negatives
        (up to one per other phrase of the song); label 1 only for ``same bars``.
    """
    rng = np.random.default_rng(seed)
    per_song = {name: song_pairs(st, sr=sr, song=name) for name, st in songs.items()}
    out: list[StemPair] = []
    for name, (pairs, queries, _) in per_song.items():
        out += pairs
        pool = [
            p
            for other, (_, _, partners) in per_song.items()
            if other != name
            for p in partners
            if queries and tempo_fits(queries[0].tempo, p.tempo, max_stretch=max_stretch)
        ]
        for q in queries:
            if not pool:
                break
            take = rng.choice(len(pool), size=min(others_per_query, len(pool)), replace=False)
            out += [StemPair(q, pool[int(j)], 0, OTHER_SONG, name) for j in take]
    return out
