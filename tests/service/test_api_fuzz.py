"""Every operation of the REST API, fed requests generated from its own OpenAPI schema by
Schemathesis (valid and invalid parameters and bodies), answers without a server error.

Where an operation names a track, a segment, a job or a mashup file (a path parameter, a query
field or a body field), the generated name is replaced, in most examples, by one that exists,
so that the requests reach past validation: real tracks' waveforms and grids, real segments'
audio, renders and mashups at generated transforms, ratings, matches, a finished scan's job,
a rendered mashup's file."""

from __future__ import annotations

import os
import time

import schemathesis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from .conftest import ingested_copy

#: Examples per operation and mode (about 25 operations; schema-valid, then schema-invalid).
EXAMPLES = int(os.environ.get("CRATEDIG_FUZZ_EXAMPLES", "25"))
ID_FIELDS = {
    "track_id": "track",
    "segment_id": "segment",
    "query_segment": "segment",
    "candidate_segment": "segment",
    "job_id": "job",
    "name": "mashup",
}


def _plant_ids(case, data, ids: dict[str, list[str]]) -> None:
    for where in (case.path_parameters, case.query, case.body):
        if not isinstance(where, dict):
            continue
        for key, kind in ID_FIELDS.items():
            if isinstance(where.get(key), str):
                where[key] = data.draw(st.sampled_from([*ids[kind], where[key]]))


def _fuzzer(operation, mode: GenerationMode, ids: dict[str, list[str]], seen: set[int]):
    """A Hypothesis test of ``operation``: generated requests (``ids`` planted), no 5xx; the
    statuses it got are added to ``seen``."""

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case, data):
        _plant_ids(case, data, ids)
        response = case.call_and_validate(checks=[not_a_server_error])
        seen.add(response.status_code)

    return fuzz


def test_no_request_gets_a_server_error(service_music, tmp_path):
    from cratedig.service import ServiceSettings, create_app

    url, music = ingested_copy(service_music, tmp_path)
    with sa.create_engine(url).connect() as c:
        ids = {
            "track": [r[0] for r in c.execute(sa.text("select id from tracks"))],
            "segment": [r[0] for r in c.execute(sa.text("select id from segments"))],
        }
    assert ids["track"] and ids["segment"]
    app = create_app(ServiceSettings(db=url, music=[music]))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    with TestClient(app) as client:  # the app's lifespan: its jobs are shut down at the end
        # a finished scan's job and a rendered mashup's file, for the operations that name them
        job = client.post("/api/library/scan", json={"folder": ""}).json()["job"]
        deadline = time.monotonic() + 180
        while client.get(f"/api/jobs/{job}").json()["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the scan did not end"
            time.sleep(0.1)
        mashup = client.post("/api/mashup", json={"track_id": ids["track"][0]})
        assert mashup.status_code == 200, mashup.text
        ids["job"] = [job]
        ids["mashup"] = [mashup.json()["audio"].rsplit("/", 1)[1]]
        for mode, result in ((m, r) for m in GenerationMode for r in schema.get_all_operations()):
            operation = result.ok()
            fuzz = _fuzzer(operation, mode, ids, statuses.setdefault(operation.label, set()))
            try:
                fuzz()
            except Unsatisfiable:  # nothing the schema rules out (no parameters, or only
                pass  # free strings): no invalid request to make
            except Exception as e:  # noqa: BLE001 - every operation is tried, all failures listed
                failures.append(
                    f"{operation.label} ({mode.value}): {type(e).__name__}: {str(e)[:1500]}"
                )
    assert not failures, "\n\n".join(failures)
    assert len(statuses) >= 25
    # the planted ids reach the operations' work, not only their validation
    for label in (
        "GET /api/tracks/{track_id}/waveform",
        "GET /api/segments/{segment_id}/audio",
        "POST /api/render",
        "POST /api/mashup",
        "POST /api/match",
    ):
        assert 200 in statuses[label], (label, statuses[label])
    assert 201 in statuses["POST /api/ratings"]
    assert 200 in statuses["GET /api/jobs/{job_id}"]
    assert 200 in statuses["GET /api/mashups/{name}"]
