"""The learned ranker over REST: train from the library's stems and ratings as a background job
(progress, cancel, one job at a time), list the versions, roll back; matches are scored by the
version that serves, never by a remembered older one."""

from __future__ import annotations

import time

import pytest

from learn.stem_library import ingest_stem_songs  # tests/learn (tests/ is on the path)


@pytest.fixture(scope="module")
def stems_client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from cratedig.service import ServiceSettings, create_app

    lib = ingest_stem_songs(tmp_path_factory.mktemp("models-api"))
    settings = ServiceSettings(db=lib["db"], music=[lib["music"]])
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c, lib


def _finished(client, job_id, timeout=300.0):
    """Poll a job until it ends; every state seen on the way."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = client.get(f"/api/jobs/{job_id}").json()
        seen.append((j["state"], j["stage"], j["done"], j["total"]))
        if j["state"] not in ("queued", "running"):
            return j, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running after {timeout} s: {seen[-1]}")


def _train(client):
    r = client.post("/api/models/train")
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "train"
    j, seen = _finished(client, r.json()["job"])
    assert j["state"] == "done", j
    return j["report"], seen


def _match(client, name):
    tracks = client.get("/api/tracks").json()["tracks"]
    track = next(t for t in tracks if t["path"].endswith(name))
    r = client.post("/api/match", json={"track_id": track["track_id"]})
    assert r.status_code == 200, r.text
    return [c for m in r.json()["matches"] for c in m["candidates"]]


def test_a_training_job_can_be_cancelled_and_blocks_other_jobs(stems_client):
    """Cancelled while its stem songs are analysed: no model is stored; while it runs, neither
    a second training nor a scan starts (409, naming what runs)."""
    client, lib = stems_client
    r = client.post("/api/models/train")
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]
    again = client.post("/api/models/train")
    assert again.status_code == 409 and "a training is already running" in again.json()["error"]
    scan = client.post("/api/library/scan", json={"folder": str(lib["music"])})
    assert scan.status_code == 409 and "a training is already running" in scan.json()["error"]
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 202
    j, _ = _finished(client, job_id)
    assert j["state"] == "cancelled" and j["report"] is None
    assert client.get("/api/models").json() == {"models": []}
    assert any(
        x["job"] == job_id and x["kind"] == "train" for x in client.get("/api/jobs").json()["jobs"]
    )


def test_train_list_and_roll_back_the_ranker_over_rest(stems_client):
    client, lib = stems_client
    assert client.get("/api/models").json() == {"models": []}
    query = "/p.wav"
    before = _match(client, query)  # remembered by the service's match cache
    assert before and all("learned" not in c["terms"] for c in before)

    body, seen = _train(client)
    assert body["version"] == 1 and body["metrics"]["stem_pairs"] > 100
    assert body["metrics"]["evidence_songs"] == 4  # every song ranked by probes without it
    assert body["metrics"]["blend"] in (0.0, 0.25, 0.5, 0.75, 1.0)  # the share that serves
    assert body["left_out"] == [] and body["metrics"]["stem_songs_left_out"] == 0
    # The job showed its stem songs analysed one by one, then the fit.
    assert any(st == "stems" and 0 < done < 5 for _, st, done, _ in seen), seen
    assert seen[-1] == ("done", "finished", 5, 5), seen
    # The new version serves at once: the remembered rule-only match is not handed out again.
    after = _match(client, query)
    assert after and all(0.0 <= c["terms"]["learned"] <= 1.0 for c in after)

    second, _ = _train(client)
    assert second["version"] == 2 and second["metrics"]["stem_lists_cached"] is True
    models = client.get("/api/models").json()["models"]
    assert [(m["version"], m["active"]) for m in models] == [(1, False), (2, True)]
    rolled = client.put("/api/models/active", json={"version": 1})
    assert rolled.status_code == 200
    assert [(m["version"], m["active"]) for m in rolled.json()["models"]] == [(1, True), (2, False)]

    missing = client.put("/api/models/active", json={"version": 9})
    assert missing.status_code == 404 and "no ranker model version 9" in missing.json()["error"]
    assert client.put("/api/models/active", json={"version": 0}).status_code == 422


def test_training_with_nothing_to_learn_from_is_one_clear_error(client):
    """The plain service library has no stems and no ratings of both kinds."""
    r = client.post("/api/models/train")
    assert r.status_code == 422
    assert "nothing to learn from" in r.json()["error"]
    assert client.get("/api/models").json() == {"models": []}
