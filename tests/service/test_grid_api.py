"""``PUT/DELETE /api/tracks/{id}/grid``: fix a library track's grid over REST (the web page's
"Fix grid"). On its own library: it re-analyses a track, which other tests must not see."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cratedig.service import ServiceSettings, create_app

from .test_api import assert_error


@pytest.fixture(scope="module")
def grid_client(service_music, tmp_path_factory):
    from .conftest import ingested_copy

    url, music = ingested_copy(service_music, tmp_path_factory.mktemp("grid-api"))
    settings = ServiceSettings(db=url, music=[music])
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c, music


def test_fix_a_grid_over_rest_and_reset_it(grid_client):
    client, _ = grid_client
    track = next(t for t in client.get("/api/tracks").json()["tracks"] if "house_a" in t["path"])
    tid = track["track_id"]
    before = client.get(f"/api/tracks/{tid}").json()
    beat2 = before["beats"][1]
    r = client.put(f"/api/tracks/{tid}/grid", json={"downbeat": beat2})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["given"] == {"downbeat": beat2}
    assert done["after"]["first_downbeat"] == pytest.approx(beat2, abs=0.02)
    assert done["path"] == track["path"]
    after = client.get(f"/api/tracks/{tid}").json()
    assert after["downbeats"][0] == pytest.approx(beat2, abs=0.02)
    assert after["estimates"]["grid"]["given"] == {"downbeat": beat2}
    # the new phrases are what the track is matched and played by
    m = client.post("/api/match", json={"track_id": tid, "top": 2}).json()
    assert [x["query_segment"] for x in m["matches"]] == [s["id"] for s in after["segments"]]
    seg = after["segments"][0]
    assert client.get(f"/api/segments/{seg['id']}/audio").status_code == 200
    assert client.get(f"/api/tracks/{tid}/waveform").status_code == 200
    # a tempo later adds to the bar line
    r = client.put(f"/api/tracks/{tid}/grid", json={"bpm": 2 * round(track["tempo"])})
    assert r.json()["given"] == {"bpm": 2.0 * round(track["tempo"]), "downbeat": beat2}
    # DELETE: the analysis' own grid again
    r = client.delete(f"/api/tracks/{tid}/grid")
    assert r.status_code == 200 and r.json()["given"] == {}
    again = client.get(f"/api/tracks/{tid}").json()
    assert again["downbeats"] == pytest.approx(before["downbeats"], abs=1e-3)
    assert "grid" not in again["estimates"]


def test_grid_requests_that_cannot_be_done(grid_client):
    client, music = grid_client
    tid = client.get("/api/tracks").json()["tracks"][0]["track_id"]
    assert_error(client.put(f"/api/tracks/{tid}/grid", json={}), 422, "bpm")
    assert_error(client.put(f"/api/tracks/{tid}/grid", json={"bpm": 500}), 422)
    assert_error(client.put(f"/api/tracks/{tid}/grid", json={"beats_per_bar": 7}), 422)
    assert_error(client.put(f"/api/tracks/{tid}/grid", json={"downbeat": 1e6}), 422, "past the end")
    assert_error(client.put("/api/tracks/xyz/grid", json={"bpm": 120}), 422, "track id")
    assert_error(client.put(f"/api/tracks/{'0' * 16}/grid", json={"bpm": 120}), 404, "not a track")
    # a track whose file is gone: 404, saying so
    c = next(t for t in client.get("/api/tracks").json()["tracks"] if "house_c" in t["path"])
    (music / "crate" / "deep" / "house_c.wav").unlink()
    assert_error(client.put(f"/api/tracks/{c['track_id']}/grid", json={"bpm": 120}), 404, "gone")
