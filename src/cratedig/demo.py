"""The demo: synthesize a small library with known truth, ingest it, match, render. No network.

:func:`run_demo` does the whole main job of cratedig on songs it writes itself, so a fresh
machine shows every stage working (and how well: truth beside estimate):

1. ``demo_library`` writes ``n`` songs with known tempo, key and meter into ``music/`` (with
   ``truth.json``; kept, not rewritten, when a re-run asks for the same songs);
2. :func:`cratedig.workflows.update_library` analyses them into a SQLite library beside it
   (``library.db``) and brings the match index and segment clusters up to date;
3. every track is matched against the rest; the one with the most matched phrases is the query;
4. its best pair is rendered (``renders/pair.wav``) and a whole-song mashup is planned and
   rendered (``renders/mashup.wav`` and its cue sheet ``renders/mashup.json``).

The CLI (``cratedig demo``) prints the result; ``--json`` prints :func:`run_demo`'s dict.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]


#: Order of the fit labels when the demo picks the pair to render (a good fit first).
_FIT_RANK = {"good": 0, "fair": 1}


def _noop(message: str) -> None:
    pass


def _existing_songs(music: Path, params: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The truth of songs an earlier run wrote with the same parameters, if all still exist."""
    try:
        if json.loads((music / "demo.json").read_text()) != params:
            return None
        truth = json.loads((music / "truth.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(truth, list) or not all(Path(t["path"]).is_file() for t in truth):
        return None
    return truth


def run_demo(
    folder: str | Path,
    *,
    n: int = 8,
    seed: int = 0,
    seconds: float = 30.0,
    render: bool = True,
    progress: Callable[[str], None] = _noop,
) -> dict[str, Any]:
    """Generate, ingest, match and render; return what was done and where it was written.

    Parameters
    ----------
    folder : path
        Receives ``music/`` (the songs and ``truth.json``), ``library.db`` (with its
        ``library.db.d/`` artefacts) and ``renders/``. Re-running with the same ``n``,
        ``seed`` and ``seconds`` reuses the songs and the library: nothing is analysed again.
    n, seed, seconds
        Passed to :func:`cratedig.synth.demo_library`.
    render : bool
        Also render the best pair and a mashup.
    progress : callable
        Called with a short message before each stage.

    Returns
    -------
    dict
        ``folder``, ``db``, ``tracks`` (truth beside estimate per song), ``ingest``,
        ``query`` (the song with the most phrases that have a fair or good partner),
        ``matches`` (each of its phrases' best partner, in order, with its ``fit``),
        ``renders`` (the best-fitting of those pairs and a mashup: paths and timings) and
        ``seconds`` per stage.
    """
    from cratedig import workflows
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library
    from cratedig.match.store import sync_index
    from cratedig.synth import demo_library
    from cratedig.theory import Key

    folder = Path(folder)
    music = folder / "music"
    timings: dict[str, float] = {}
    t = time.perf_counter()
    params = {"n": n, "seed": seed, "seconds": seconds, "stems": True}
    truth = _existing_songs(music, params)
    if truth is None:
        progress(f"synthesizing {n} songs into {music}")
        truth = demo_library(music, n=n, seed=seed, seconds=seconds, stems=True)
        (music / "demo.json").write_text(json.dumps(params) + "\n")
    timings["synthesize"] = time.perf_counter() - t

    db = folder / "library.db"
    url = f"sqlite:///{db.resolve()}"
    result: dict[str, Any] = {"folder": str(folder), "music": str(music), "db": str(db)}
    with open_library(url) as lib:
        t = time.perf_counter()
        progress("ingesting (analysis, database, match index, clusters)")
        # The audio alone: the songs' BPM tags hold their truth, which would hide the
        # analysis' own errors from the truth-beside-estimate table below.
        update = workflows.update_library(lib, music.resolve(), use_tags=False)
        index, _ = sync_index(lib)
        timings["ingest"] = time.perf_counter() - t
        report = update.ingest
        result["ingest"] = {
            "analysed": report.analysed,
            "unchanged": report.unchanged,
            "failed": [list(f) for f in report.failed],
            "segments": update.segments,
            "clusters": update.clusters.to_json(),
        }
        with lib.reader() as s:
            files = repo.known_files(s)
            analyses = {}
            for tr in truth:
                known = files.get(str(Path(tr["path"]).resolve())) or files.get(tr["path"])
                if known is not None and known.track_id is not None:
                    analyses[tr["path"]] = repo.load_analysis(s, known.track_id)
        rows = []
        for tr in truth:
            a = analyses.get(tr["path"])
            true_key = Key.parse(f"{tr['key']} {tr['mode']}")
            rows.append(
                {
                    "path": tr["path"],
                    "track_id": None if a is None else a.track_id,
                    "true_tempo": tr["tempo"],
                    "tempo": None if a is None else round(a.tempo, 2),
                    "true_key": str(true_key),
                    "true_camelot": true_key.camelot,
                    "key": None if a is None else str(a.key),
                    "camelot": None if a is None else a.key.camelot,
                    "true_meter": tr["meter"],
                    "meter": None if a is None else a.time_signature[0],
                    "segments": 0 if a is None else len(a.segments),
                    "sections": 0 if a is None else len(a.sections),
                    "tempo_ok": a is not None and abs(a.tempo / tr["tempo"] - 1) <= 0.04,
                    "key_ok": a is not None and a.key == true_key,
                }
            )
        result["tracks"] = rows

        # Match every song against the rest; the one with the most matched phrases is shown.
        t = time.perf_counter()
        progress("matching every song against the library")
        best = None
        for a in analyses.values():
            if a is None:
                continue
            m = workflows.match(lib, a, index=index, in_library=True, top=3)
            matched = sum(bool(sm.candidates) for sm in m.matches)
            fitting = sum(
                bool(sm.candidates) and sm.candidates[0].get("fit") in ("good", "fair")
                for sm in m.matches
            )
            top = max((c["score"] for sm in m.matches for c in sm.candidates), default=0.0)
            if best is None or (fitting, matched, top) > best[0]:
                best = ((fitting, matched, top), m)
        timings["match"] = time.perf_counter() - t
        result["query"] = None
        result["matches"] = []
        result["renders"] = {}
        if best is None or best[0][1] == 0:
            result["seconds"] = {k: round(v, 3) for k, v in timings.items()}
            return result
        m = best[1]
        qa = m.analysis
        result["query"] = {
            "track_id": qa.track_id,
            "path": qa.path,
            "tempo": round(qa.tempo, 2),
            "key": str(qa.key),
            "camelot": qa.key.camelot,
            "phrases": len(qa.segments),
            "matched_phrases": best[0][1],
        }
        # Each phrase's best partner, in the song's order (what a DJ reads down); the pair
        # rendered is the best-scoring of them.
        firsts = [(sm.candidates[0], sm.query) for sm in m.matches if sm.candidates]
        firsts.sort(key=lambda cq: cq[1].start)
        pairs = sorted(
            firsts, key=lambda cq: (_FIT_RANK.get(str(cq[0].get("fit")), 2), -cq[0]["score"])
        )
        result["matches"] = [
            {
                "query_segment": q.id,
                "query_start": round(q.start, 2),
                "query_end": round(q.end, 2),
                **{
                    k: c.get(k)
                    for k in (
                        "segment",
                        "path",
                        "score",
                        "tempo_ratio",
                        "stretch",
                        "semitones",
                        "cents",
                        "key_relation",
                        "fit",
                        "reason",
                    )
                },
            }
            for c, q in firsts
        ]
        if render:
            from cratedig.render.service import audio_format, write_audio

            renders = folder / "renders"
            renders.mkdir(exist_ok=True)
            c, q = pairs[0]
            t = time.perf_counter()
            progress(f"rendering the best pair {q.id} + {c['segment']}")
            pair = workflows.render_pair(lib, q.id, str(c["segment"]), use_cache=False)
            pair_path = renders / "pair.wav"
            write_audio(pair_path, pair.audio, pair.sr, audio_format(None, pair_path))
            timings["render_pair"] = time.perf_counter() - t
            t = time.perf_counter()
            progress(f"rendering a whole-song mashup of {Path(qa.path).name}")
            mix_path, plan_path = renders / "mashup.wav", renders / "mashup.json"
            mash = workflows.render_mashup(lib, qa, index=index, output=mix_path)
            plan_path.write_text(json.dumps(mash.plan.to_json(), indent=1))
            timings["render_mashup"] = time.perf_counter() - t
            result["renders"] = {
                "pair": str(pair_path),
                "pair_seconds": round(pair.audio.shape[-1] / pair.sr, 2),
                "pair_segments": [q.id, str(c["segment"])],
                "mashup": str(mix_path),
                "mashup_seconds": round(mash.duration, 2),
                "plan": str(plan_path),
                "cues_with_partner": mash.plan.totals["with_partner"],
                "cues": mash.plan.totals["cues"],
            }
    result["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return result
