"""The learned ranker over REST: train from the library's stems and ratings, list the versions,
roll back; matches are scored by the version that serves, never by a remembered older one."""

from __future__ import annotations

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


def _match(client, name):
    tracks = client.get("/api/tracks").json()["tracks"]
    track = next(t for t in tracks if t["path"].endswith(name))
    r = client.post("/api/match", json={"track_id": track["track_id"]})
    assert r.status_code == 200, r.text
    return [c for m in r.json()["matches"] for c in m["candidates"]]


def test_train_list_and_roll_back_the_ranker_over_rest(stems_client):
    client, lib = stems_client
    assert client.get("/api/models").json() == {"models": []}
    query = "/p.wav"
    before = _match(client, query)  # remembered by the service's match cache
    assert before and all("learned" not in c["terms"] for c in before)

    first = client.post("/api/models/train")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["version"] == 1 and body["metrics"]["stem_pairs"] > 100
    assert body["metrics"]["evidence_songs"] == 4  # every song ranked by probes without it
    assert body["metrics"]["blend"] in (0.0, 0.25, 0.5, 0.75, 1.0)  # the share that serves
    # The new version serves at once: the remembered rule-only match is not handed out again.
    after = _match(client, query)
    assert after and all(0.0 <= c["terms"]["learned"] <= 1.0 for c in after)

    assert client.post("/api/models/train").json()["version"] == 2
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
