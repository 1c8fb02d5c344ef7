"""The REST contract of DESIGN.md through FastAPI's test client: every endpoint, bad requests,
byte ranges, uploads, tokens, and no traceback or foreign path in any answer."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from cratedig.service import ServiceSettings, create_app

from .conftest import SR

MATCH_KEYS = {"segment", "track_id", "path", "start", "end", "score", "tempo_ratio", "stretch",
              "semitones", "key_relation", "terms", "reason"}  # fmt: skip


def assert_error(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in r.text
    for w in words:
        assert w in body["error"], body["error"]
    return body["error"]


def wav_seconds(data: bytes) -> float:
    info = sf.info(io.BytesIO(data))
    return info.frames / info.samplerate


@pytest.fixture(scope="module")
def tracks(client):
    return {Path(t["path"]).name: t for t in client.get("/api/tracks").json()["tracks"]}


@pytest.fixture(scope="module")
def best_pair(client, tracks):
    """The best-scoring (query phrase, partner) of house_a."""
    a = tracks["house_a.wav"]
    m = client.post("/api/match", json={"track_id": a["track_id"], "top": 3}).json()
    pairs = [(c["score"], sm["query_segment"], c) for sm in m["matches"] for c in sm["candidates"]]
    assert pairs, "house_a must have partners among the other two songs"
    score, q, c = max(pairs, key=lambda p: p[0])
    detail = client.get(f"/api/tracks/{a['track_id']}").json()
    seg = next(s for s in detail["segments"] if s["id"] == q)
    return {"query": q, "candidate": c, "segment": seg}


def test_health_ready_docs_and_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["segments"] > 0
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/tracks", "/api/tracks/{track_id}", "/api/library/scan", "/api/jobs/{job_id}",
              "/api/match", "/api/segments/{segment_id}/audio", "/api/render", "/api/mashup",
              "/api/ratings", "/healthz", "/readyz"):  # fmt: skip
        assert p in paths, p
    assert "multipart/form-data" in paths["/api/match"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset in ("app.js", "style.css"):
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200 and "https://" not in r.text


def test_tracks_list_filters_and_bad_queries(client, tracks, service_library):
    r = client.get("/api/tracks").json()
    assert r["total"] == 3 and len(r["tracks"]) == 3
    assert {"track_id", "path", "tempo", "key", "mode", "camelot", "energy", "duration"} <= set(
        r["tracks"][0]
    )
    assert all(Path(t["path"]).is_relative_to(service_library["music"]) for t in r["tracks"])
    a = tracks["house_a.wav"]
    by_key = client.get("/api/tracks", params={"key": a["camelot"]}).json()
    assert a["track_id"] in [t["track_id"] for t in by_key["tracks"]]
    assert all(t["camelot"] == a["camelot"] for t in by_key["tracks"])
    lo, hi = a["tempo"] - 0.5, a["tempo"] + 0.5
    by_bpm = client.get("/api/tracks", params={"bpm": f"{lo}-{hi}"}).json()["tracks"]
    assert [t["track_id"] for t in by_bpm] == [a["track_id"]]
    text = client.get("/api/tracks", params={"q": "deep"}).json()
    assert text["total"] == 1 and text["tracks"][0]["path"].endswith("house_c.wav")
    page = client.get("/api/tracks", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 3 and len(page["tracks"]) == 1
    # Sorted over the whole library by the server, then paged: the page shows a slice of it.
    by_energy = client.get("/api/tracks", params={"sort": "energy", "desc": True}).json()["tracks"]
    energies = [t["energy"] for t in by_energy]
    assert energies == sorted(energies, reverse=True)
    second = client.get(
        "/api/tracks", params={"sort": "energy", "desc": True, "limit": 1, "offset": 1}
    ).json()["tracks"]
    assert [t["track_id"] for t in second] == [by_energy[1]["track_id"]]
    by_name = client.get("/api/tracks", params={"sort": "name"}).json()["tracks"]
    assert [Path(t["path"]).name for t in by_name] == ["house_a.wav", "house_b.flac", "house_c.wav"]
    wheel = [
        t["camelot"] for t in client.get("/api/tracks", params={"sort": "camelot"}).json()["tracks"]
    ]
    assert wheel == sorted(wheel, key=lambda c: (int(c[:-1]), c[-1]))
    assert_error(client.get("/api/tracks", params={"sort": "colour"}), 422, "sort")
    assert_error(client.get("/api/tracks", params={"bpm": "fast"}), 422, "bpm")
    assert_error(client.get("/api/tracks", params={"key": "H#"}), 422)
    assert_error(client.get("/api/tracks", params={"limit": 0}), 422, "limit")
    assert_error(client.get("/api/tracks", params={"offset": -1}), 422, "offset")


def test_one_track_and_bad_ids(client, tracks):
    a = tracks["house_a.wav"]
    t = client.get(f"/api/tracks/{a['track_id']}").json()
    assert t["track_id"] == a["track_id"] and t["segments"]
    assert t["segments"][0]["id"] == f"{a['track_id']}_0"
    assert {"start", "end", "label", "camelot", "energy"} <= set(t["segments"][0])
    w = client.get(f"/api/tracks/{a['track_id']}/waveform", params={"points": 100}).json()
    assert len(w["peaks"]) == 100 and max(w["peaks"]) == 1.0
    assert_error(client.get("/api/tracks/not-an-id"), 422, "track id")
    assert_error(client.get("/api/tracks/../../etc/passwd"), 404)
    assert_error(client.get("/api/tracks/0123456789abcdef"), 404, "not in the library")


def test_match_by_track_id_is_the_cli_contract(client, tracks, service_library):
    a = tracks["house_a.wav"]
    m = client.post("/api/match", json={"track_id": a["track_id"], "top": 2}).json()
    assert m["query"]["track_id"] == a["track_id"] and m["query"]["in_library"] is True
    assert len(m["matches"]) == len(m["query"]["segments"])
    cands = [c for sm in m["matches"] for c in sm["candidates"]]
    assert cands and all(MATCH_KEYS <= set(c) for c in cands)
    assert all(c["track_id"] != a["track_id"] for c in cands)
    assert all(len(sm["candidates"]) <= 2 for sm in m["matches"])
    # The same JSON as `cratedig match --json` (paths under the music root are shown as is).
    from typer.testing import CliRunner

    from cratedig.cli import app

    r = CliRunner().invoke(app, ["match", a["track_id"], "--db", service_library["url"],
                                 "--top", "2", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["matches"] == m["matches"]
    # A prefix works too; a segment alone.
    one = client.post("/api/match", json={"track_id": a["track_id"][:8], "segment": 1}).json()
    assert len(one["matches"]) == 1 and one["matches"][0]["query_segment"].endswith("_1")

    # At most two phrases of one track per segment unless asked (per_track, 0 = every one).
    def most_of_one_track(body):
        out = client.post("/api/match", json={"track_id": a["track_id"], "top": 8, **body})
        assert out.status_code == 200, out.text
        return max(
            max(map(ids.count, ids), default=0)
            for ids in ([c["track_id"] for c in sm["candidates"]] for sm in out.json()["matches"])
        )

    assert most_of_one_track({}) <= 2 and most_of_one_track({"per_track": 1}) == 1
    assert most_of_one_track({"per_track": 0}) > 2
    # Only a chosen track: every candidate is one of its phrases.
    fits = cands[-1]["track_id"]  # a track known to fit under some phrase
    chosen = client.post(
        "/api/match", json={"track_id": a["track_id"], "with_tracks": [fits[:8]], "top": 20}
    ).json()
    got = [c["track_id"] for sm in chosen["matches"] for c in sm["candidates"]]
    assert got and set(got) == {fits}
    assert chosen["ruled_out"] == []
    # A track the rules rule out whole is named with the reason (here: a tight stretch limit).
    c = tracks["house_c.wav"]["track_id"]
    tight = client.post(
        "/api/match", json={"track_id": a["track_id"], "with_tracks": [c], "max_stretch": 0.005}
    ).json()
    assert not any(sm["candidates"] for sm in tight["matches"])
    assert len(tight["ruled_out"]) == 1 and "house_c.wav: 122" in tight["ruled_out"][0]
    assert "needs a 2 % stretch" in tight["ruled_out"][0]
    assert "the limit is 0.5 %" in tight["ruled_out"][0]


def test_match_bad_requests(client):
    assert_error(client.post("/api/match", json={"track_id": "ffffffffffffffff"}), 404)
    assert_error(client.post("/api/match", json={"track_id": "zz"}), 422, "track_id")
    assert_error(client.post("/api/match", json={}), 422, "track_id")
    assert_error(client.post("/api/match", json={"track_id": "abcd", "top": 0}), 422, "top")
    assert_error(client.post("/api/match", json={"track_id": "abcd", "max_shift": 9}), 422)
    assert_error(client.post("/api/match", json={"track_id": "abcd", "per_track": -1}), 422)
    assert_error(
        client.post("/api/match", json={"track_id": "abcd", "with_tracks": ["../etc"]}),
        422,
        "with_tracks",
    )
    r = client.post(
        "/api/match", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(r, 422)
    assert_error(client.post("/api/match", json=[1, 2]), 422)


def test_match_an_uploaded_file_then_play_render_and_rate_it(client, service_library, tmp_path):
    # A song not in the library (the waltz folder was not ingested): analysed, not added.
    state = client.app.state.cratedig
    x, sr = sf.read(service_library["music"] / "crate" / "house_b.flac")
    up = tmp_path / "my song.ogg"
    sf.write(up, 0.8 * x, sr, format="OGG")
    with up.open("rb") as f:
        r = client.post("/api/match", files={"file": ("my song.ogg", f, "audio/ogg")},
                        data={"top": "2"})  # fmt: skip
    assert r.status_code == 200, r.text
    m = r.json()
    q = m["query"]
    assert q["in_library"] is False and q["upload"] is True and q["path"] == "my song.ogg"
    assert client.get("/api/tracks").json()["total"] == 3  # not added
    cands = [(sm["query_segment"], c) for sm in m["matches"] for c in sm["candidates"]]
    assert cands
    qseg, c = cands[0]
    # Its phrases can be played and rendered, and a suggestion rated.
    seg = next(s for s in q["segments"] if s["id"] == qseg)
    audio = client.get(f"/api/segments/{qseg}/audio")
    assert audio.status_code == 200
    assert wav_seconds(audio.content) == pytest.approx(seg["end"] - seg["start"], abs=0.05)
    both = client.post("/api/render", json={"query_segment": qseg,
                                            "candidate_segment": c["segment"]})  # fmt: skip
    assert both.status_code == 200 and both.headers["content-type"] == "audio/wav"
    assert wav_seconds(both.content) == pytest.approx(seg["end"] - seg["start"], abs=0.05)
    rated = client.post("/api/ratings", json={"query_segment": qseg, "candidate_segment":
                        c["segment"], "score": 4})  # fmt: skip
    assert rated.status_code == 201
    # Only the kept upload stays in the upload folder (no temporary file left behind).
    assert [p.name for p in state.upload_dir.iterdir()] == [f"{q['track_id']}.ogg"]


def test_match_at_a_tempo_the_user_gives(client, service_library, tmp_path):
    """``bpm``: the query is analysed again on a grid at that tempo (a library track from its
    file, an upload as uploaded); out of 30-300 it is refused."""
    track = client.get("/api/tracks").json()["tracks"][0]
    half = round(track["tempo"] / 2, 1)
    r = client.post("/api/match", json={"track_id": track["track_id"], "top": 2, "bpm": half})
    assert r.status_code == 200, r.text
    q = r.json()["query"]
    assert q["in_library"] is True and q["tempo"] == pytest.approx(half, rel=0.02)
    assert_error(client.post("/api/match", json={"track_id": track["track_id"], "bpm": 500}), 422)
    x, sr = sf.read(service_library["music"] / "crate" / "house_b.flac")
    up = tmp_path / "acapella.wav"
    sf.write(up, 0.8 * x, sr)
    plain = client.post("/api/match", files={"file": ("a.wav", up.read_bytes(), "audio/wav")})
    tempo = plain.json()["query"]["tempo"]
    with up.open("rb") as f:
        r = client.post("/api/match", files={"file": ("a.wav", f, "audio/wav")},
                        data={"bpm": str(2 * tempo)})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["query"]["tempo"] == pytest.approx(2 * tempo, rel=0.02)


def test_an_uploads_own_name_counts_where_its_tags_are_silent(client, service_library, tmp_path):
    """Stored under a made-up name, an upload still has its own: "groove_<half>bpm.wav" lays
    the half-time grid, and the query says the tempo came from the name."""
    x, sr = sf.read(service_library["music"] / "crate" / "house_b.flac")
    up = tmp_path / "up.wav"
    sf.write(up, 0.6 * x, sr)
    plain = client.post("/api/match", files={"file": ("plain.wav", up.read_bytes(), "audio/wav")})
    tempo = plain.json()["query"]["tempo"]
    half = round(tempo / 2)
    name = f"groove_{half}bpm.wav"
    r = client.post("/api/match", files={"file": (name, up.read_bytes(), "audio/wav")})
    assert r.status_code == 200, r.text
    q = r.json()["query"]
    assert abs(q["tempo"] - tempo / 2) < 0.02 * tempo
    assert q["estimates"]["tempo"]["tags"] == {
        "bpm": float(half), "relation": "1:2", "used": True, "heard": round(tempo, 2),
        "source": "name",
    }  # fmt: skip


def test_upload_bad_audio_empty_and_missing_field(client):
    state = client.app.state.cratedig
    before = set(state.upload_dir.iterdir())
    r = client.post(
        "/api/match", files={"file": ("song.mp3", b"ID3" + b"\x00" * 5000, "audio/mpeg")}
    )
    err = assert_error(r, 422, "not usable audio")
    assert str(state.upload_dir) not in err and "/tmp" not in err
    r = client.post("/api/match", files={"file": ("x.wav", b"", "audio/wav")})
    assert_error(r, 422)
    r = client.post("/api/match", files={"other": ("x.wav", b"RIFF", "audio/wav")})
    assert_error(r, 422, "file")
    # A text file named .wav is refused by decoding it, not by its name.
    r = client.post("/api/match", files={"file": ("notes.wav", b"hello " * 1000, "audio/wav")})
    assert_error(r, 422, "not usable audio")
    assert set(state.upload_dir.iterdir()) == before


def test_upload_over_the_limit_is_413(service_library, tmp_path):
    settings = ServiceSettings(db=service_library["url"], max_upload_bytes=10_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.post("/api/match", files={"file": ("big.wav", b"\x00" * 50_000, "audio/wav")})
        assert_error(r, 413, "larger")
        assert list(c.app.state.cratedig.upload_dir.iterdir()) == []


def test_segment_audio_and_byte_ranges(client, best_pair):
    seg = best_pair["segment"]
    url = f"/api/segments/{seg['id']}/audio"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "audio/wav"
    assert wav_seconds(whole.content) == pytest.approx(seg["end"] - seg["start"], abs=0.01)
    size = len(whole.content)
    r = client.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == whole.content[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{size}"
    r = client.get(url, headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == whole.content[1000:]
    r = client.get(url, headers={"Range": "bytes=-64"})
    assert r.status_code == 206 and r.content == whole.content[-64:]
    r = client.get(url, headers={"Range": f"bytes={size + 10}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    assert_error(client.get(url, headers={"Range": "bytes=abc"}), 416)
    assert client.get(url, headers={"Range": "bytes=0-1,5-9"}).status_code == 200
    tid = seg["id"].split("_")[0]
    assert_error(client.get(f"/api/segments/{tid}_999/audio"), 404)
    assert_error(client.get("/api/segments/0123456789abcdef_0/audio"), 404)
    assert_error(client.get("/api/segments/nope/audio"), 422, "segment id")


def test_render_pair_parts_and_bad_transforms(client, best_pair):
    seg, c = best_pair["segment"], best_pair["candidate"]
    length = seg["end"] - seg["start"]
    body = {"query_segment": seg["id"], "candidate_segment": c["segment"]}
    outs = {}
    for part in ("both", "query", "candidate"):
        r = client.post("/api/render", json={**body, "part": part})
        assert r.status_code == 200, r.text
        outs[part] = r.content
        assert wav_seconds(r.content) == pytest.approx(length, abs=0.05)
    assert len({hash(v) for v in outs.values()}) == 3
    y, _ = sf.read(io.BytesIO(outs["candidate"]))
    assert np.abs(y).max() > 0.01
    # GET with a range, as the page's <audio> asks.
    r = client.get("/api/render", params={**body, "part": "both", "semitones": c["semitones"],
                                          "ratio": c["tempo_ratio"]},
                   headers={"Range": "bytes=0-1023"})  # fmt: skip
    assert r.status_code == 206 and len(r.content) == 1024
    # A nudge of the partner by its beats: as long, and another partner layer.
    r = client.get("/api/render", params={**body, "part": "candidate", "offset_beats": 1})
    assert r.status_code == 200 and wav_seconds(r.content) == pytest.approx(length, abs=0.05)
    assert r.content != outs["candidate"]
    assert_error(client.get("/api/render", params={**body, "offset_beats": 99}), 422, "offset")
    assert_error(client.post("/api/render", json={**body, "ratio": 1.5}), 422, "ratio")
    assert_error(client.post("/api/render", json={**body, "semitones": 40}), 422, "semitones")
    assert_error(client.post("/api/render", json={**body, "part": "drums"}), 422, "part")
    assert_error(client.get("/api/render", params={**body, "ratio": 3}), 422, "ratio")
    bad = {**body, "candidate_segment": "0123456789abcdef_0"}
    assert_error(client.post("/api/render", json=bad), 404)
    assert_error(client.post("/api/render", json={**body, "query_segment": "x_1"}), 422)


def test_mashup_with_cue_sheet_and_ranges(client, tracks):
    a = tracks["house_a.wav"]
    r = client.post("/api/mashup", json={"track_id": a["track_id"]})
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["audio"].startswith("/api/mashups/") and m["plan"]["cues"]
    # With one chosen partner track: its own file, every layered phrase from that track.
    c = tracks["house_c.wav"]["track_id"]
    w = client.post("/api/mashup", json={"track_id": a["track_id"], "with_tracks": [c[:8]]})
    assert w.status_code == 200, w.text
    cues = w.json()["plan"]["cues"]
    assert {q["partner"]["track_id"] for q in cues if q["partner"]} == {c}
    assert w.json()["audio"] != m["audio"] and client.get(w.json()["audio"]).status_code == 200
    assert_error(
        client.post("/api/mashup", json={"track_id": a["track_id"], "with_tracks": ["zz"]}),
        422,
        "with_tracks",
    )
    assert m["plan"]["totals"]["with_partner"] >= 1
    audio = client.get(m["audio"])
    assert audio.status_code == 200
    assert wav_seconds(audio.content) == pytest.approx(a["duration"], abs=0.1)
    part = client.get(m["audio"], headers={"Range": "bytes=44-143"})
    assert part.status_code == 206 and part.content == audio.content[44:144]
    again = client.post("/api/mashup", json={"track_id": a["track_id"]}).json()
    assert again == m
    assert_error(client.post("/api/mashup", json={"track_id": "0123456789abcdef"}), 404)
    assert_error(client.post("/api/mashup", json={"track_id": "0123"}), 422)
    assert_error(client.get("/api/mashups/..%2F..%2Fetc%2Fpasswd"), 404)
    assert_error(client.get("/api/mashups/evil.wav"), 422)


def test_ratings_round_trip_into_the_table(client, best_pair, service_library):
    from cratedig import workflows
    from cratedig.library.db import open_library

    q, c = best_pair["query"], best_pair["candidate"]
    body = {"query_segment": q, "candidate_segment": c["segment"], "score": 5,
            "semitones": c["semitones"], "tempo_ratio": c["tempo_ratio"], "comment": "lovely"}  # fmt: skip
    r = client.post("/api/ratings", json=body)
    assert r.status_code == 201
    rid = r.json()["id"]
    with open_library(service_library["url"]) as lib:
        stored = {x.id: x for x in workflows.list_ratings(lib)}
    assert stored[rid].score == 5 and stored[rid].comment == "lovely"
    assert stored[rid].query_segment == q
    listed = client.get("/api/ratings").json()["ratings"]
    assert any(x["id"] == rid for x in listed)
    for bad in (0, 6, 2.5, "five"):
        assert_error(client.post("/api/ratings", json={**body, "score": bad}), 422, "score")
    assert_error(client.post("/api/ratings", json={**body, "tempo_ratio": 3}), 422)
    assert_error(
        client.post("/api/ratings", json={**body, "candidate_segment": "0123456789abcdef_3"}), 404
    )
    assert_error(client.post("/api/ratings", json={**body, "query_segment": "../x"}), 422)
    assert_error(client.post("/api/ratings", json={**body, "comment": "x" * 5000}), 422)
    assert stored[rid].offset_beats == 0  # as suggested unless told
    moved = client.post("/api/ratings", json={**body, "score": 2, "offset_beats": -2}).json()["id"]
    assert (
        next(x for x in client.get("/api/ratings").json()["ratings"] if x["id"] == moved)[
            "offset_beats"
        ]
        == -2
    )
    assert_error(client.post("/api/ratings", json={**body, "offset_beats": 17}), 422, "offset")


def test_errors_cut_paths_outside_the_music_roots(client, service_library):
    state = client.app.state.cratedig
    inside = service_library["music"] / "crate" / "house_a.wav"
    assert state.public_error(Exception("/etc/secret/file.db: locked")) == "file.db: locked"
    assert str(inside) in state.public_error(Exception(f"{inside}: broken"))
    assert state.public_path("/home/someone/x.wav") == "x.wav"
    r = client.get("/api/nothing-here")
    assert_error(r, 404)


# -- scans ------------------------------------------------------------------------------------


@pytest.fixture
def scan_client(service_music, tmp_path):
    music = tmp_path / "music"
    shutil.copytree(service_music, music)
    outside = tmp_path / "outside"
    outside.mkdir()
    sf.write(outside / "secret.wav", np.zeros(SR * 6), SR)
    (music / "escape").symlink_to(outside, target_is_directory=True)
    settings = ServiceSettings(db=f"sqlite:///{tmp_path / 'scan.db'}", music=[music])
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c, music, outside


def wait_job(client, job_id, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = client.get(f"/api/jobs/{job_id}").json()
        if j["state"] not in ("queued", "running"):
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running: {j}")


def test_scan_job_progress_and_refusals(scan_client):
    client, music, outside = scan_client
    r = client.post("/api/library/scan", json={"folder": "other"})
    assert r.status_code == 202
    job = wait_job(client, r.json()["job"])
    assert job["state"] == "done" and job["done"] == job["total"] == 1
    assert job["report"]["analysed"] == 1 and job["folder"] == "music/other"
    assert client.get("/api/tracks").json()["total"] == 1
    assert client.get("/readyz").json()["segments"] > 0  # the index was reloaded
    assert client.app.state.cratedig.generation == 1  # and cached matches dropped
    assert any(j["job"] == job["job"] for j in client.get("/api/jobs").json()["jobs"])
    # The absolute path of a folder under the root works too; unchanged files are skipped.
    r = client.post("/api/library/scan", json={"folder": str(music / "other")})
    again = wait_job(client, r.json()["job"])
    assert again["report"]["unchanged"] == 1 and again["report"]["analysed"] == 0
    # Nothing outside the music roots: '..', absolute paths, symlinks out.
    for folder in ("..", "../..", "other/../../outside", "/etc", str(outside), "escape",
                   "/", "~"):  # fmt: skip
        err = assert_error(client.post("/api/library/scan", json={"folder": folder}), 403)
        assert str(outside) not in err and "/etc" not in err
    # The music root itself holds the link out: the scanner would follow it, so it is refused.
    err = assert_error(client.post("/api/library/scan", json={"folder": ""}), 403, "escape")
    assert str(outside) not in err
    assert_error(client.post("/api/library/scan", json={"folder": "nope"}), 404, "no such folder")
    assert_error(client.post("/api/library/scan", json={"folder": "crate/house_a.wav"}), 404)
    assert_error(client.post("/api/library/scan", json={"folder": "a\x00b"}), 422)
    assert_error(client.post("/api/library/scan", json={"folder": 5}), 422)
    assert_error(client.get("/api/jobs/nope"), 404)
    assert_error(client.post("/api/jobs/nope/cancel"), 404)
    assert client.get("/api/tracks").json()["total"] == 1  # no secret.wav


def test_a_scan_sets_keeps_and_clears_the_bpm_range(scan_client):
    """The page's BPM range field: a scan given ``bpm_range`` stores it (``/api/config`` says
    it), a scan without one reads in it, ``off`` clears it; a bad range is a 422 before any
    job starts."""
    client, _, _ = scan_client
    assert client.get("/api/config").json()["bpm_range"] is None
    for bad in ("fast", "140-70", "10-20", "1-2-3"):
        assert_error(
            client.post("/api/library/scan", json={"folder": "other", "bpm_range": bad}), 422
        )
    assert client.get("/api/jobs").json()["jobs"] == []
    r = client.post("/api/library/scan", json={"folder": "other", "bpm_range": "150-250"})
    job = wait_job(client, r.json()["job"])
    assert job["state"] == "done" and job["report"]["bpm_range"] == [150, 250]
    assert client.get("/api/config").json()["bpm_range"] == [150, 250]
    (track,) = client.get("/api/tracks").json()["tracks"]
    assert track["tempo"] == pytest.approx(180.0, rel=0.03)  # the 90 BPM waltz, at 180
    again = wait_job(
        client, client.post("/api/library/scan", json={"folder": "other"}).json()["job"]
    )
    assert again["report"]["bpm_range"] == [150, 250] and again["report"]["analysed"] == 0
    off = client.post("/api/library/scan", json={"folder": "other", "bpm_range": "off"})
    cleared = wait_job(client, off.json()["job"])
    assert cleared["report"]["bpm_range"] is None
    assert client.get("/api/config").json()["bpm_range"] is None


def test_scan_can_be_cancelled(scan_client):
    client, music, _ = scan_client
    r = client.post("/api/library/scan", json={"folder": "crate"})
    assert r.status_code == 202
    job_id = r.json()["job"]
    second = client.post("/api/library/scan", json={"folder": "other"})
    assert_error(second, 409, "already running")
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 202
    job = wait_job(client, job_id)
    assert job["state"] == "cancelled" and job["done"] < 3
    assert client.get("/api/tracks").json()["total"] < 3


def test_no_music_roots_means_no_scans(service_library):
    with TestClient(create_app(ServiceSettings(db=service_library["url"]))) as c:
        assert_error(c.post("/api/library/scan", json={"folder": "/tmp"}), 403, "--music")


# -- tokens -----------------------------------------------------------------------------------


def test_writes_need_the_token_beyond_loopback(service_library, best_pair, monkeypatch):
    from cratedig.errors import ParameterError
    from cratedig.service.settings import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    with pytest.raises(ParameterError, match="CRATEDIG_TOKEN"):
        ServiceSettings(db=service_library["url"], host="0.0.0.0")
    monkeypatch.setenv("CRATEDIG_TOKEN", "s3cret-token")
    settings = ServiceSettings.from_environment(db=service_library["url"], host="0.0.0.0")
    body = {"query_segment": best_pair["query"], "candidate_segment":
            best_pair["candidate"]["segment"], "score": 3}  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.get("/api/tracks").status_code == 200  # reads are open
        assert c.get("/api/config").json()["auth"] is True
        assert_error(c.post("/api/ratings", json=body), 401, "token")
        bad = {"Authorization": "Bearer wrong"}
        assert_error(c.post("/api/ratings", json=body, headers=bad), 401)
        good = {"Authorization": "Bearer s3cret-token"}
        assert c.post("/api/ratings", json=body, headers=good).status_code == 201
        assert_error(c.post("/api/library/scan", json={"folder": "x"}), 401)
        assert_error(c.post("/api/render", json={**body, "part": "query"}), 401)
        assert_error(c.post("/api/match", files={"file": ("a.wav", b"RIFF", "audio/wav")}), 401)
        seg = best_pair["query"]
        url = f"/api/render?query_segment={seg}&candidate_segment={body['candidate_segment']}&part=query"
        assert_error(c.get(url), 401)
        assert c.get(url + "&token=s3cret-token").status_code == 200


def test_the_cli_rate_and_ratings_commands(service_library, best_pair):
    from typer.testing import CliRunner

    from cratedig.cli import app

    db = service_library["url"]
    q, c = best_pair["query"], best_pair["candidate"]["segment"]
    runner = CliRunner()
    r = runner.invoke(app, ["rate", q, c, "2", "--comment", "muddy bass", "--db", db, "--json"])
    assert r.exit_code == 0, r.output
    rid = json.loads(r.stdout)["id"]
    listed = json.loads(runner.invoke(app, ["ratings", "--db", db, "--json"]).stdout)["ratings"]
    mine = next(x for x in listed if x["id"] == rid)
    assert mine["score"] == 2 and mine["comment"] == "muddy bass"
    csv_text = runner.invoke(app, ["ratings", "--db", db, "--csv"]).stdout
    assert csv_text.splitlines()[0].startswith("id,query_segment,candidate_segment,score")
    assert any(line.startswith(f"{rid},") for line in csv_text.splitlines())
    assert mine["offset_beats"] == 0
    csv_head = csv_text.splitlines()[0].split(",")
    assert "offset_beats" in csv_head
    r = runner.invoke(app, ["rate", q, c, "4", "--offset-beats", "2", "--db", db])
    assert r.exit_code == 0 and "+2 beats" in r.stdout, r.output
    listed = json.loads(runner.invoke(app, ["ratings", "--db", db, "--json"]).stdout)["ratings"]
    assert [x["offset_beats"] for x in listed if x["id"] > rid] == [2]
    from cratedig.cli.ratings import _transform  # the table's transform cell

    moved = next(x for x in listed if x["id"] > rid)
    assert _transform(moved) == f"{moved['semitones']:+d} st, {moved['tempo_ratio']:g}:1, +2 beats"
    r = runner.invoke(app, ["rate", q, c, "7", "--db", db])
    assert r.exit_code != 0 and "score 7" in str(r.exception)
    r = runner.invoke(app, ["rate", q, "0123456789abcdef_0", "3", "--db", db])
    assert r.exit_code != 0 and "not in the library" in str(r.exception)
    assert os.environ.get("CRATEDIG_TOKEN") is None


def test_uploads_are_analysed_at_a_lower_priority(service_library):
    """The upload-analysis process yields the cores to the requests served meanwhile."""
    import os

    app = create_app(ServiceSettings(db=service_library["url"]))
    state = app.state.cratedig
    try:
        worker_nice = state.analysis_pool.submit(os.nice, 0).result(timeout=60)
        assert worker_nice >= os.nice(0) + 10 or worker_nice == 19
    finally:
        state.analysis_pool.shutdown()


def test_the_library_report_is_served_at_reports(client):
    r = client.get("/reports")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "cratedig library report" in r.text and 'alt="Camelot key wheel"' in r.text


def test_the_library_downloads_as_a_rekordbox_collection(client, service_library):
    import xml.etree.ElementTree as ET

    from cratedig.library.rekordbox import path_of_location

    r = client.get("/api/export/rekordbox.xml?hot_cues=true")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert "cratedig-rekordbox.xml" in r.headers["content-disposition"]
    root = ET.fromstring(r.content)
    tracks = root.find("COLLECTION").findall("TRACK")
    on_disk = sorted(str(p) for p in (service_library["music"] / "crate").rglob("*.*"))
    assert sorted(path_of_location(t.get("Location")) for t in tracks) == on_disk
    for t in tracks:
        assert t.find("TEMPO") is not None and float(t.get("AverageBpm")) > 0
        hot = [m for m in t.findall("POSITION_MARK") if m.get("Num") != "-1"]
        assert hot and hot[0].get("Num") == "0"
    page = client.get("/").text
    assert 'href="/api/export/rekordbox.xml"' in page


def test_after_an_upgrade_the_library_keeps_matching_until_it_is_analysed_again(
    service_music, tmp_path
):
    """A new cratedig (a new ``ANALYSIS_VERSION``) finds every track analysed by the old one.
    They stay in the match index on that analysis, so ``match`` and the page keep suggesting
    partners and say how many tracks a scan will bring up to date; before, the index dropped
    them all and ``match`` said "the library is empty" until a full re-ingest."""
    from fastapi.testclient import TestClient
    from sqlalchemy import update
    from typer.testing import CliRunner

    from cratedig import workflows
    from cratedig.cli import app as cli
    from cratedig.library.db import open_library
    from cratedig.library.schema import TrackRow
    from cratedig.match.store import sync_index
    from cratedig.service import ServiceSettings, create_app

    from .conftest import ingested_copy

    url, music = ingested_copy(service_music, tmp_path)
    with open_library(url) as lib:
        index, _ = sync_index(lib)
        before = len(index)
        with lib.transaction() as s:  # what the tracks look like to the next version
            s.execute(update(TrackRow).values(analysis_version=0))
        index, sync = sync_index(lib)
        assert len(index) == before and sync.removed_tracks == 0
        query = sorted(p for p in (music / "crate").iterdir() if p.is_file())[0]
        result = workflows.match(lib, query)
        assert result.stale_tracks == 3
        assert any(m.candidates for m in result.matches)
    r = CliRunner().invoke(cli, ["match", str(query), "--db", url], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "3 library tracks were analysed by an older cratedig" in r.output
    assert "library is empty" not in r.output
    settings = ServiceSettings(db=url, music=[music])
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        cfg = c.get("/api/config").json()
        assert cfg["stale_tracks"] == 3 and cfg["segments"] == before
    # A scan analyses them again: their new stamps replace their segments in the index.
    with open_library(url) as lib:
        workflows.update_library(lib, music / "crate")
        index, _ = sync_index(lib)
        assert workflows.match(lib, query).stale_tracks == 0
        assert len(index) == before


def test_an_upload_of_a_library_song_leaves_its_library_copy_out(
    client, tracks, service_library, tmp_path
):
    """A DJ drops an OGG of a song their library holds as FLAC: the FLAC is the upload's own
    recording, never its partner, and the answer names it (as the page does), by the path the
    service shows."""
    x, sr = sf.read(service_library["music"] / "crate" / "house_b.flac")
    up = tmp_path / "house b (radio).ogg"
    sf.write(up, 0.7 * x, sr, format="OGG")
    with up.open("rb") as f:
        r = client.post("/api/match", files={"file": (up.name, f, "audio/ogg")})
    assert r.status_code == 200, r.text
    m = r.json()
    flac = tracks["house_b.flac"]
    assert all(c["track_id"] != flac["track_id"] for sm in m["matches"] for c in sm["candidates"])
    (same,) = m["same_recording"]
    assert same["track_id"] == flac["track_id"] and same["path"] == flac["path"]
    assert same["ber"] <= 0.25


def test_the_library_s_duplicates_are_listed_with_the_copy_to_keep(scan_client):
    """``GET /api/duplicates``: after a scan of a crate holding a song twice (FLAC and an OGG
    of it), one group, the FLAC to keep, paths as the service shows them."""
    client, music, outside = scan_client
    assert client.get("/api/duplicates").json()["groups"] == []
    x, sr = sf.read(music / "crate" / "house_b.flac")
    sf.write(music / "crate" / "house_b (copy).ogg", 0.5 * x, sr, format="OGG")
    n = len(x)  # and a radio edit of it: its middle third cut out
    sf.write(music / "crate" / "house_b (edit).wav", np.r_[x[: n // 3], x[2 * n // 3 :]], sr)
    job = wait_job(client, client.post("/api/library/scan", json={"folder": "crate"}).json()["job"])
    assert job["state"] == "done" and job["report"]["analysed"] == 5
    said = {  # the scan says so: the copy, and the edit against the song and its copy
        frozenset((Path(c["path"]).name, Path(c["same_as"]).name)): c["edit"]
        for c in job["report"]["same_recording"]
    }
    assert said == {
        frozenset(("house_b.flac", "house_b (copy).ogg")): False,
        frozenset(("house_b (edit).wav", "house_b.flac")): True,
        frozenset(("house_b (edit).wav", "house_b (copy).ogg")): True,
    }
    found = client.get("/api/duplicates").json()
    assert found["tracks"] == 5 and found["without_fingerprint"] == 0
    (group,) = found["groups"]
    shown = {t["track_id"]: t["path"] for t in client.get("/api/tracks").json()["tracks"]}
    paths = [c["path"] for c in group["copies"]]
    assert paths == [shown[c["track_id"]] for c in group["copies"]]  # as /api/tracks shows them
    assert [Path(p).name for p in paths] == ["house_b.flac", "house_b (copy).ogg"]
    assert group["keep"] == group["copies"][0]["track_id"] and str(outside) not in str(found)
    # the edit is listed apart (kept, never paired), against the copy to keep
    (edit,) = found["edits"]
    assert [Path(edit[k]["path"]).name for k in ("shorter", "longer")] == [
        "house_b (edit).wav",
        "house_b.flac",
    ]
    assert edit["shorter"]["path"] == shown[edit["shorter"]["track_id"]] and edit["pieces"] >= 2
    assert not edit["inside"]
    (family,) = found["versions"]  # one recording in two versions, shortest first, named
    assert [c["path"] for c in family] == [edit["shorter"]["path"], edit["longer"]["path"]]
    assert all(c["path"] == shown[c["track_id"]] for c in family)
