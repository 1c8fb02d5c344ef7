"""`cratedig match`, `index` and `clusters` end to end on an ingested library of real audio.

The library holds a transposed copy (+2 semitones, Rubber Band) of a song that is not in the
library, and unrelated songs. Matching the original file must find the copy for its phrases,
with the -2 semitone shift that undoes the transposition and a 1:1 tempo ratio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cratedig.cli import app
from cratedig.errors import ParameterError
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050
CONTRACT = {
    "segment", "track_id", "path", "start", "end", "score", "tempo_ratio", "stretch",
    "semitones", "key_relation", "terms", "reason",
}  # fmt: skip
TERMS = {"harmonic", "key", "rhythm", "spectral", "energy", "tempo", "shift", "transposition"}


@pytest.fixture(scope="module")
def songs_dir(tmp_path_factory) -> Path:
    from pedalboard import time_stretch

    root = tmp_path_factory.mktemp("matchlib")
    query = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=16, seed=31, sr=SR)
    sf.write(root / "query.wav", query.audio, SR)
    lib = root / "lib"
    lib.mkdir()
    up2 = time_stretch(query.audio[None], SR, stretch_factor=1.0, pitch_shift_in_semitones=2.0)
    sf.write(lib / "copy_up2.flac", up2[0], SR)
    for name, tempo, key, seed in (
        ("other_126.wav", 126.0, "C major", 32),
        ("half_62.wav", 62.0, "E minor", 33),
        ("fast_150.ogg", 150.0, "F# minor", 34),
    ):
        s = synthesize_song(tempo=tempo, key=Key.parse(key), bars=8 if tempo < 100 else 16,
                            seed=seed, sr=SR)  # fmt: skip
        sf.write(lib / name, s.audio, SR)
    # Same key, 1 % slower, but in 3/4: its bars would drift against the query's, never a match.
    waltz = synthesize_song(tempo=123.0, key=Key.parse("A minor"), meter=3, bars=16, seed=35,
                            sr=SR)  # fmt: skip
    sf.write(lib / "waltz_123.wav", waltz.audio, SR)
    return root


def run(*args: object, ok: bool = True):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=not ok)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def ingest(folder: Path, db: str) -> dict:
    return json.loads(run("ingest", folder, "--db", db, "--json").stdout)


def test_match_a_file_not_in_the_library(songs_dir, db_url):
    report = ingest(songs_dir / "lib", db_url)
    assert report["analysed"] == 5
    assert report["index"]["segments"] > 0 and report["index"]["added_tracks"] == 5
    tracks = json.loads(run("tracks", "--db", db_url, "--json").stdout)["tracks"]
    copy_id = next(t["track_id"] for t in tracks if t["path"].endswith("copy_up2.flac"))
    waltz = next(t for t in tracks if t["path"].endswith("waltz_123.wav"))
    assert waltz["time_signature"] == [3, 4] and waltz["camelot"] == "8A"

    res = json.loads(run("match", songs_dir / "query.wav", "--db", db_url, "--json").stdout)
    q = res["query"]
    assert q["in_library"] is False and q["segments"]
    assert [m["query_segment"] for m in res["matches"]] == [s["id"] for s in q["segments"]]
    found = 0
    for m in res["matches"]:
        assert len(m["candidates"]) <= 5
        for c in m["candidates"]:
            assert CONTRACT <= set(c) and set(c["terms"]) == TERMS
            assert 0.0 <= c["score"] <= 1.0 and abs(c["stretch"]) <= 0.08 + 1e-9
            assert abs(c["semitones"]) <= 3 and c["tempo_ratio"] in (0.5, 1.0, 2.0)
            assert c["start"] < c["end"] and Path(c["path"]).exists()
            assert c["track_id"] not in (q["track_id"], waltz["track_id"])
            assert c["reason"]
        scores = [c["score"] for c in m["candidates"]]
        assert scores == sorted(scores, reverse=True)
        assert m["fit"] in ("good", "fair", "none")
        assert m["no_good_partner"] == (m["fit"] == "none")
        top = m["candidates"][0] if m["candidates"] else None
        if top and top["track_id"] == copy_id and top["semitones"] == -2:
            assert top["tempo_ratio"] == 1.0 and top["key_relation"] == "same"
            found += 1
    assert found >= 0.75 * len(res["matches"]), res["matches"]


def test_own_track_only_when_asked(songs_dir, sqlite_url):
    ingest(songs_dir / "lib", sqlite_url)
    tracks = json.loads(run("tracks", "--db", sqlite_url, "--json").stdout)["tracks"]
    copy_id = next(t["track_id"] for t in tracks if t["path"].endswith("copy_up2.flac"))
    waltz = next(t for t in tracks if t["path"].endswith("waltz_123.wav"))
    assert waltz["time_signature"] == [3, 4] and waltz["camelot"] == "8A"
    # By track id prefix: the stored analysis, no decoding.
    res = json.loads(run("match", copy_id[:8], "--db", sqlite_url, "--json").stdout)
    assert res["query"]["in_library"] is True and res["query"]["track_id"] == copy_id
    assert all(c["track_id"] != copy_id for m in res["matches"] for c in m["candidates"])
    own = json.loads(
        run("match", copy_id, "--db", sqlite_url, "--json", "--include-own-track", "-k", "3").stdout
    )
    tops = [m["candidates"][0] for m in own["matches"] if m["candidates"]]
    assert any(c["track_id"] == copy_id for c in tops)
    # The same file given by path is recognised as the library track.
    by_path = json.loads(
        run("match", songs_dir / "lib" / "copy_up2.flac", "--db", sqlite_url, "--json").stdout
    )
    assert by_path["query"]["in_library"] is True
    assert [s["id"] for s in by_path["query"]["segments"]] == [
        s["id"] for s in res["query"]["segments"]
    ]


def test_suggestions_name_several_songs_unless_every_phrase_is_asked_for(songs_dir, sqlite_url):
    # By default at most two phrases of one track per segment (the best of a song and one
    # alternative); --per-track 0 lists every phrase, ranked as before.
    ingest(songs_dir / "lib", sqlite_url)
    q = songs_dir / "query.wav"
    every = json.loads(
        run("match", q, "--db", sqlite_url, "--json", "-k", "8", "--per-track", "0").stdout
    )
    default = json.loads(run("match", q, "--db", sqlite_url, "--json", "-k", "8").stdout)
    one = json.loads(
        run("match", q, "--db", sqlite_url, "--json", "-k", "8", "--per-track", "1").stdout
    )
    crowded = 0
    for a, b, c in zip(every["matches"], default["matches"], one["matches"], strict=True):
        ids = [x["track_id"] for x in a["candidates"]]
        crowded += max(map(ids.count, ids), default=0) > 2
        for out, cap in ((b, 2), (c, 1)):
            got = [x["track_id"] for x in out["candidates"]]
            assert max(map(got.count, got), default=0) <= cap
            # The capped list is the full ranking with the extra phrases of a track left out.
            seen: dict[str, int] = {}
            want = []
            for x in a["candidates"]:
                seen[x["track_id"]] = seen.get(x["track_id"], 0) + 1
                if seen[x["track_id"]] <= cap:
                    want.append(x["segment"])
            assert [x["segment"] for x in out["candidates"]][: len(want)] == want
    assert crowded >= 1  # the uncapped lists do repeat a track, so the cap was exercised
    bad = run("match", q, "--db", sqlite_url, "--per-track", "-1", ok=False)
    assert bad.exit_code != 0


def test_with_a_chosen_track_every_phrase_of_it_is_scored_or_the_reason_is_given(
    songs_dir, sqlite_url
):
    ingest(songs_dir / "lib", sqlite_url)
    q = songs_dir / "query.wav"
    lib = songs_dir / "lib"
    tracks = json.loads(run("tracks", "--db", sqlite_url, "--json").stdout)["tracks"]
    ids = {Path(t["path"]).name: t["track_id"] for t in tracks}
    other = lib / "other_126.wav"
    # Only that track's phrases, all of them (--per-track 0), whatever the index would return.
    res = json.loads(
        run("match", q, "--db", sqlite_url, "--json", "--with", other, "-k", "50",
            "--per-track", "0").stdout
    )  # fmt: skip
    cands = [c for m in res["matches"] for c in m["candidates"]]
    assert cands and {c["track_id"] for c in cands} == {ids["other_126.wav"]}
    n_other = len(json.loads(run("match", ids["other_126.wav"], "--db", sqlite_url,
                                 "--json").stdout)["query"]["segments"])  # fmt: skip
    assert all(len(m["candidates"]) == n_other for m in res["matches"])
    # Two tracks, one by id prefix; the 62 BPM song goes under too (at 2:1, or 1:1 where it is
    # read at 124).
    two = json.loads(
        run("match", q, "--db", sqlite_url, "--json", "--with", ids["half_62.wav"][:8],
            "--with", lib / "copy_up2.flac").stdout
    )  # fmt: skip
    got = {c["track_id"]: c["tempo_ratio"] for m in two["matches"] for c in m["candidates"]}
    assert set(got) == {ids["half_62.wav"], ids["copy_up2.flac"]}
    assert got[ids["half_62.wav"]] in (1.0, 2.0) and got[ids["copy_up2.flac"]] == 1.0
    # The query's own track may be named; its phrases partner the others, never themselves.
    copy = ids["copy_up2.flac"]
    own = json.loads(
        run("match", copy, "--db", sqlite_url, "--json", "--with", copy, "-k", "50",
            "--per-track", "0").stdout
    )  # fmt: skip
    assert any(m["candidates"] for m in own["matches"])
    for m in own["matches"]:
        assert all(c["track_id"] == copy for c in m["candidates"])
        assert m["query_segment"] not in {c["segment"] for c in m["candidates"]}
    # A track the rules rule out whole: no suggestion, and the human output says why.
    text = run("match", q, "--db", sqlite_url, "--with", lib / "fast_150.ogg").stdout
    assert "fast_150.ogg: 150" in text and "stretch" in text and "limit is 8 %" in text
    text = run("match", q, "--db", sqlite_url, "--with", lib / "waltz_123.wav").stdout
    assert "3/4 against the query's 4/4" in text
    # Names that are no library track: one clear line each.
    for bad, words in ((q, "not in the library"), ("0123abcd", "neither a library file")):
        r = run("match", q, "--db", sqlite_url, "--with", bad, ok=False)
        assert isinstance(r.exception, ParameterError) and words in str(r.exception)


def test_segment_option_and_human_table(songs_dir, sqlite_url):
    ingest(songs_dir / "lib", sqlite_url)
    q = songs_dir / "query.wav"
    one = json.loads(run("match", q, "--db", sqlite_url, "--json", "--segment", "1").stdout)
    assert len(one["matches"]) == 1 and one["matches"][0]["query_segment"].endswith("_1")
    text = run("match", q, "--db", sqlite_url, "--top", "2").stdout
    assert "segment 0" in text and "score" in text and "st" in text


def test_bad_requests_are_one_clear_line(songs_dir, sqlite_url):
    ingest(songs_dir / "lib", sqlite_url)
    r = run("match", songs_dir / "query.wav", "--db", sqlite_url, "--segment", "99", ok=False)
    assert isinstance(r.exception, ParameterError) and "segment 99" in str(r.exception)
    r = run("match", "no-such-file.wav", "--db", sqlite_url, ok=False)
    assert isinstance(r.exception, ParameterError) and "neither an audio file" in str(r.exception)
    # As a real process: exit status 1, one line on stderr, no traceback.
    proc = subprocess.run(
        [sys.executable, "-m", "cratedig.cli", "match", "deadbeef00", "--db", sqlite_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "deadbeef00" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    broken = songs_dir / "broken.mp3"
    broken.write_bytes(b"ID3" + b"\x00" * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "cratedig.cli", "match", str(broken), "--db", sqlite_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_index_is_updated_incrementally_and_rebuilt_on_demand(songs_dir, sqlite_url, tmp_path):
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library
    from cratedig.match.batch import SegmentBatch
    from cratedig.match.index import BruteForceIndex
    from cratedig.match.store import index_path, sync_index

    lib_dir = tmp_path / "lib"
    lib_dir.mkdir()
    for name in ("copy_up2.flac", "other_126.wav"):
        shutil.copy(songs_dir / "lib" / name, lib_dir / name)
    first = ingest(lib_dir, sqlite_url)["index"]
    assert first["rebuilt"] and first["added_tracks"] == 2
    shutil.copy(songs_dir / "lib" / "half_62.wav", lib_dir / "half_62.wav")
    second = ingest(lib_dir, sqlite_url)["index"]
    assert not second["rebuilt"] and second["added_tracks"] == 1 and second["written"]
    assert second["segments"] > first["segments"]
    unchanged = ingest(lib_dir, sqlite_url)["index"]
    assert not unchanged["written"] and unchanged["segments"] == second["segments"]

    with open_library(sqlite_url) as lib:
        path = index_path(lib)
        assert path.exists() and path.parent == Path(f"{lib.url.split(':///', 1)[1]}.d")
        incremental, _ = sync_index(lib)
        rebuilt, rep = sync_index(lib, rebuild=True)
        assert rep.rebuilt and len(rebuilt) == len(incremental)
        a = dict(zip(incremental.ids, incremental.vectors(), strict=True))
        b = dict(zip(rebuilt.ids, rebuilt.vectors(), strict=True))
        assert set(a) == set(b)
        for k in a:
            np.testing.assert_allclose(a[k], b[k], atol=1e-6)
        # The index returns what brute force over every stored segment returns.
        with lib.reader() as s:
            segments = repo.load_segments(s)
        brute = BruteForceIndex()
        brute.add(SegmentBatch.from_segments(segments))
        queries = SegmentBatch.from_segments(segments[:4])
        for h1, h2 in zip(rebuilt.search(queries, k=10), brute.search(queries, k=10), strict=True):
            assert list(h1.ids) == list(h2.ids)
        # A corrupt index file is derived data: rebuilt, not an error.
        path.write_bytes(b"not an npz")
        again, rep = sync_index(lib)
        assert rep.rebuilt and len(again) == len(rebuilt)
    text = run("index", "--db", sqlite_url, "--rebuild").stdout
    assert "rebuilt" in text


def test_clusters_are_stored_and_listed(songs_dir, db_url, tmp_path):
    from sqlalchemy import select

    from cratedig.library.db import open_library
    from cratedig.library.schema import SegmentRow

    lib_dir = tmp_path / "lib"
    shutil.copytree(songs_dir / "lib", lib_dir, ignore=shutil.ignore_patterns("fast_150.ogg"))
    report = ingest(lib_dir, db_url)
    assert report["clusters"]["fitted"] and report["clusters"]["version"] == 1
    out = json.loads(run("clusters", "--db", db_url, "--json").stdout)
    sizes = [c["segments"] for c in out["clusters"]]
    with open_library(db_url) as lib, lib.reader() as s:
        ids = s.execute(select(SegmentRow.id, SegmentRow.cluster_id)).all()
    assert all(c is not None for _, c in ids) and sum(sizes) == len(ids)
    k = out["model"]["k"]
    assert 2 <= k <= len(ids) and len(out["clusters"]) <= k
    for c in out["clusters"]:
        Key.parse(c["camelot"])
        assert c["tempo"] > 0 and 0 <= c["energy"] <= 1 and c["band"] in ("low", "mid", "high")

    # New music is assigned to the current model; --refit trains a new version.
    shutil.copy(songs_dir / "lib" / "fast_150.ogg", lib_dir / "fast_150.ogg")
    later = ingest(lib_dir, db_url)["clusters"]
    assert not later["fitted"] and later["version"] == 1 and later["assigned"] > 0
    refit = json.loads(run("clusters", "--db", db_url, "--json", "--refit", "--k", "3").stdout)
    assert refit["model"]["fitted"] and refit["model"]["version"] == 2 and refit["model"]["k"] == 3
    assert sum(c["segments"] for c in refit["clusters"]) == len(ids) + later["assigned"]
    assert "segs" in run("clusters", "--db", db_url).stdout


def test_a_partner_with_a_doubtful_tempo_is_flagged_and_ranked_down(songs_dir, sqlite_url):
    """A 3:4 doubt cannot be absorbed by a stretch: the candidate says so and scores lower."""
    from cratedig.library.db import open_library
    from cratedig.library.schema import TrackRow

    ingest(songs_dir / "lib", sqlite_url)
    args = ("match", songs_dir / "query.wav", "--db", sqlite_url, "--json", "--top", "50")
    before = json.loads(run(*args).stdout)["matches"][0]["candidates"]
    top = before[0]
    assert "doubts" not in top
    with open_library(sqlite_url) as lib, lib.transaction() as s:
        row = s.get(TrackRow, top["track_id"])
        est = dict(row.estimates)
        est["tempo"] = {"value": row.tempo, "confidence": 0.2,
                        "alternative": row.tempo * 0.75, "relation": "3:4"}  # fmt: skip
        row.estimates = est
    after = json.loads(run(*args).stdout)["matches"][0]["candidates"]
    same = next(c for c in after if c["segment"] == top["segment"])
    assert same["doubts"] and "3:4" in same["doubts"][0] and "3:4" in same["reason"]
    assert same["score"] == pytest.approx(top["score"] * 0.6, abs=2e-4)
    assert [c["score"] for c in after] == sorted((c["score"] for c in after), reverse=True)
    # The weight applies before the list is cut: the first k are the first k of the long list
    # (it was applied after, so phrases of the doubtful track, which ranked high before their
    # weight, kept out better partners from short lists).
    full = json.loads(run(*args, "--per-track", "0").stdout)["matches"]
    for k in (1, 2, 3, 5):
        short = json.loads(run(*args[:-2], "--top", k, "--per-track", "0").stdout)["matches"]
        for a, b in zip(short, full, strict=True):
            assert [c["segment"] for c in a["candidates"]] == [
                c["segment"] for c in b["candidates"][:k]
            ]
    # Other tracks' candidates are untouched.
    others = {c["segment"]: c["score"] for c in before if c["track_id"] != top["track_id"]}
    for c in after:
        if c["segment"] in others:
            assert c["score"] == others[c["segment"]] and "doubts" not in c


def test_a_partner_with_doubtful_bar_lines_says_so_without_losing_its_score(songs_dir, sqlite_url):
    """Bar lines half a bar off misplace the chord changes in the render: the candidate says
    where to check, and its score (the chords may still meet) is unchanged."""
    from cratedig.library.db import open_library
    from cratedig.library.schema import TrackRow

    ingest(songs_dir / "lib", sqlite_url)
    args = ("match", songs_dir / "query.wav", "--db", sqlite_url, "--json", "--top", "50")
    before = json.loads(run(*args).stdout)["matches"][0]["candidates"]
    top = before[0]
    assert not any("bar lines" in d for d in top.get("doubts", []))
    with open_library(sqlite_url) as lib, lib.transaction() as s:
        row = s.get(TrackRow, top["track_id"])
        est = dict(row.estimates)
        est["downbeat"] = {**est["downbeat"], "confidence": 0.2}
        row.estimates = est
    after = json.loads(run(*args).stdout)["matches"][0]["candidates"]
    same = next(c for c in after if c["segment"] == top["segment"])
    assert any("bar lines uncertain (confidence 0.20)" in d for d in same["doubts"])
    assert "bar 1" in same["reason"]
    assert same["score"] == top["score"]


def test_a_whole_phrase_ranks_above_a_fragment_of_it(songs_dir, tmp_path):
    """The library holds the transposed copy twice: whole, and cut two bars into its last
    4-bar phrase. For the query's last phrase both have the same chords over the bars they
    share; the whole phrase comes first, the 2-bar tail says it covers only half the bars
    (before coverage counted, the tail ranked first: 0.763 against 0.760)."""
    folder = tmp_path / "tails"
    folder.mkdir()
    shutil.copy(songs_dir / "lib" / "copy_up2.flac", folder / "copy_up2.flac")
    y, sr = sf.read(folder / "copy_up2.flac")
    sf.write(folder / "tail_up2.flac", y[: int(14 * 4 * 60 / 124.0 * sr)], sr)
    db = f"sqlite:///{tmp_path / 'tails.sqlite'}"
    ingest(folder, db)
    out = json.loads(run("match", songs_dir / "query.wav", "--db", db, "--json").stdout)
    last = out["matches"][-1]["candidates"]
    whole = [c for c in last if c["path"].endswith("copy_up2.flac")]
    tail = [c for c in last if c["path"].endswith("tail_up2.flac") and c["coverage"] < 1]
    assert whole and tail, [(c["path"], c["coverage"]) for c in last]
    assert last[0] == whole[0] and whole[0]["coverage"] == 1.0 and whole[0]["semitones"] == -2
    assert tail[0]["coverage"] == 0.5 and "covers 2 of 4 bars" in tail[0]["reason"]
    assert tail[0]["score"] < whole[0]["score"]


def _as_three_four(analysis, confidence: float):
    """The query as if analysed in 3/4 with the given meter confidence (runner-up 4/4)."""
    for seg in analysis.segments:
        f = seg.features
        f.beat_chroma = f.beat_chroma.reshape(len(f.chroma), -1, 12)[:, :3].reshape(-1, 12)
        f.rhythm = f.rhythm[:12]
    analysis.time_signature = (3, 4)
    analysis.estimates = {
        **analysis.estimates,
        "meter": {"value": 3, "confidence": confidence, "alternative": 4},
    }
    return analysis


def test_a_query_with_a_doubtful_meter_still_gets_4_4_partners(songs_dir, sqlite_url):
    """Read as 3/4 with low confidence, the 4/4 query is matched on both readings."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    ingest(songs_dir / "lib", sqlite_url)
    with open_library(sqlite_url) as lib:
        tracks, _ = workflows.list_tracks(lib)
        four = {t["track_id"] for t in tracks if t["time_signature"] == [4, 4]}
        doubtful, _ = workflows.resolve_query(lib, songs_dir / "query.wav")
        res = workflows.match(lib, _as_three_four(doubtful, 0.2), top=10).to_json()
        sure, _ = workflows.resolve_query(lib, songs_dir / "query.wav")
        strict = workflows.match(lib, _as_three_four(sure, 0.9), top=10).to_json()
    found = [c for m in res["matches"] for c in m["candidates"] if c["track_id"] in four]
    assert len(found) >= len(res["matches"])  # about one 4/4 partner per phrase at least
    assert all(any("meter uncertain" in d for d in c["doubts"]) for c in found)
    # A sure 3/4 reading keeps the rule: no 4/4 partner.
    assert not [c for m in strict["matches"] for c in m["candidates"] if c["track_id"] in four]


def test_a_query_with_nothing_fitting_says_so(songs_dir, tmp_path):
    """Only a song a tritone away, no pitch shift allowed: listed, but "no partner fits well"."""
    folder = tmp_path / "clash"
    folder.mkdir()
    clash = synthesize_song(tempo=124.0, key=Key.parse("D# minor"), bars=16, seed=36, sr=SR)
    sf.write(folder / "tritone_124.wav", clash.audio, SR)
    db = f"sqlite:///{tmp_path / 'clash.db'}"
    ingest(folder, db)
    args = ("match", songs_dir / "query.wav", "--db", db, "--max-shift", "0")
    res = json.loads(run(*args, "--json").stdout)
    assert res["matches"] and any(m["candidates"] for m in res["matches"])
    for m in res["matches"]:
        assert m["fit"] == "none" and m["no_good_partner"] is True, m
        assert all(c["fit"] == "poor" for c in m["candidates"])
    assert "no partner fits well" in run(*args).stdout

    # The same query against its own transposed copy (+2 st) fits.
    ingest(songs_dir / "lib", db)
    res = json.loads(run("match", songs_dir / "query.wav", "--db", db, "--json").stdout)
    assert sum(m["fit"] == "good" for m in res["matches"]) >= 0.75 * len(res["matches"])


def test_the_fit_label_reads_the_rule_score_whatever_the_learned_term_says(
    songs_dir, sqlite_url, monkeypatch
):
    """A learned term reorders; the label ("good", "fair", "none") stays the rules': a ranker
    trained on stem pairs is calibrated on those pairs, and labelled by the blend the real
    stems' first suggestions read "no good" for 96 of 156 lead phrases."""
    import numpy as np

    from cratedig import workflows
    from cratedig.learn.ranker import EXTRA_FEATURES, Ranker
    from cratedig.match import TERMS

    ingest(songs_dir / "lib", sqlite_url)
    args = ("match", songs_dir / "query.wav", "--db", sqlite_url, "--json", "--top", "50",
            "--per-track", "0")  # fmt: skip
    before = json.loads(run(*args).stdout)["matches"]
    fits = {(m["query_segment"], c["segment"]): c["fit"] for m in before for c in m["candidates"]}
    assert "good" in fits.values() or "fair" in fits.values()
    names = sorted(TERMS) + list(EXTRA_FEATURES)
    d = len(names)
    # A learned term of ~0 for every pair, with the whole say: every blended score is ~0.
    silent = Ranker(names, np.zeros(d), np.ones(d), np.zeros(d), -50.0, blend=1.0)
    monkeypatch.setattr(workflows, "active_ranker", lambda library: silent)
    after = json.loads(run(*args).stdout)["matches"]
    cands = [(m["query_segment"], c) for m in after for c in m["candidates"]]
    assert cands and all(c["score"] < 1e-6 for _, c in cands)
    assert {(q, c["segment"]) for q, c in cands} == set(fits)  # every valid pair, reordered
    assert all(c["fit"] == fits[(q, c["segment"])] for q, c in cands)
    assert [m["fit"] for m in after] == [m["fit"] for m in before]
    # Each record keeps the rule score the ranker read (what training lists read back).
    rules = {
        (m["query_segment"], c["segment"]): c["rule_score"] for m in before for c in m["candidates"]
    }
    assert all(c["rule_score"] == rules[(q, c["segment"])] > 0 for q, c in cands)
    assert all(c["rule_score"] >= c["score"] - 1e-4 for m in before for c in m["candidates"])


def test_the_same_recording_in_another_file_is_no_partner(songs_dir, tmp_path):
    """A DJ's library holds a song twice (its WAV and an MP3 of it): two tracks, and the copy
    was every phrase's best partner ("chords agree bar by bar (1.00)"), a song layered on
    itself. It is left out, as the query's own track is, and named; partners made from the
    song (the copy 2 semitones up) are still suggested."""
    lib = tmp_path / "lib"
    shutil.copytree(songs_dir / "lib", lib)
    mp3 = lib / "query (2).mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(songs_dir / "query.wav"),
                    "-c:a", "libmp3lame", "-b:a", "192k", str(mp3)], check=True)  # fmt: skip
    # ...and a radio edit of it: the middle quarter cut out (a crossfade of 10 ms at the cut),
    # an MP3 too. Its halves lie at two offsets, so it agrees with the song only piece by piece.
    y, sr = sf.read(songs_dir / "query.wav", dtype="float32")
    n, fade = len(y), np.linspace(0.0, 1.0, int(0.01 * sr), dtype=np.float32)
    head, tail = y[: int(0.4 * n)], y[int(0.65 * n) :]
    k = len(fade)
    cut = np.concatenate([head[:-k], head[-k:] * (1 - fade) + tail[:k] * fade, tail[k:]])
    sf.write(tmp_path / "edit.wav", cut, sr)
    edit = lib / "query (radio edit).mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(tmp_path / "edit.wav"),
                    "-c:a", "libmp3lame", "-b:a", "192k", str(edit)], check=True)  # fmt: skip
    db = str(tmp_path / "lib.sqlite")
    assert ingest(lib, db)["analysed"] == 7
    tracks = json.loads(run("tracks", "--db", db, "--json").stdout)["tracks"]
    mp3_id = next(t["track_id"] for t in tracks if t["path"].endswith("query (2).mp3"))
    edit_id = next(t["track_id"] for t in tracks if t["path"].endswith("(radio edit).mp3"))
    copy_id = next(t["track_id"] for t in tracks if t["path"].endswith("copy_up2.flac"))

    res = json.loads(run("match", songs_dir / "query.wav", "--db", db, "--json").stdout)
    shown = [c["track_id"] for m in res["matches"] for c in m["candidates"]]
    assert mp3_id not in shown and edit_id not in shown and copy_id in shown
    same = {c["track_id"]: c for c in res["same_recording"]}
    assert set(same) == {mp3_id, edit_id}
    assert same[mp3_id]["path"] == str(mp3) and same[mp3_id]["pieces"] == 1
    assert same[mp3_id]["ber"] <= 0.25 and abs(same[mp3_id]["offset"]) < 0.15
    assert same[edit_id]["pieces"] >= 2 and same[edit_id]["ber"] <= 0.17
    # the edit's halves cover nearly all of it (a second or two is lost around the cut)
    assert same[edit_id]["seconds"] >= 0.85 * 0.75 * n / sr
    human = " ".join(run("match", songs_dir / "query.wav", "--db", db).stdout.split())
    assert "is this recording in another file" in human
    assert "is an edit of this recording" in human

    # Asked for (the own track's option), the copy is there, and first.
    own = json.loads(
        run("match", songs_dir / "query.wav", "--db", db, "--json", "--include-own-track").stdout
    )
    assert own["same_recording"] == []
    tops = [m["candidates"][0]["track_id"] for m in own["matches"] if m["candidates"]]
    assert tops.count(mp3_id) + tops.count(edit_id) >= 0.75 * len(own["matches"])
    # The library's MP3 as the query, by id: the WAV is not in the library; the radio edit is,
    # and is left out.
    by_id = json.loads(run("match", mp3_id, "--db", db, "--json").stdout)
    assert by_id["query"]["in_library"]
    assert [c["track_id"] for c in by_id["same_recording"]] == [edit_id]
    # The whole-song mashup plans on the same lists: the copy plays under no phrase.
    mix = tmp_path / "mix.wav"
    sheet = json.loads(
        run("mashup", songs_dir / "query.wav", "--db", db, "-o", mix, "--json").stdout
    )
    assert {c["track_id"] for c in sheet["plan"]["query"]["same_recording"]} == {mp3_id, edit_id}
    partners = [c["partner"]["track_id"] for c in sheet["plan"]["cues"] if c["partner"]]
    assert partners and not {mp3_id, edit_id} & set(partners) and mix.exists()
