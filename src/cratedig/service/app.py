"""The REST service and the web page: a FastAPI app over :mod:`cratedig.workflows`.

The paths and bodies follow DESIGN.md's "REST contract"; the JSON is the CLI's ``--json``.
Every error is ``{"error": "<one line>"}`` with a 4xx/5xx status, never a traceback, and file
system paths outside the ``--music`` roots are cut to their file name. Heavy work (analysis,
matching, rendering, scans) runs in worker threads, never on the event loop: endpoints that
compute are plain ``def`` functions (FastAPI runs them in its thread pool), uploads are read
asynchronously and analysed with ``run_in_threadpool``, scans run in their own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import logging
import multiprocessing
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cratedig import workflows
from cratedig.analysis.records import TrackAnalysis
from cratedig.analysis.rhythm import GridHint
from cratedig.errors import AudioError, CratedigError, ParameterError
from cratedig.library.db import Library, open_library
from cratedig.library.errors import DatabaseUnavailable, LibraryError
from cratedig.match.query import MAX_SHIFT_BOUND, MAX_STRETCH_BOUND
from cratedig.match.scoring import DEFAULT_MAX_SHIFT, DEFAULT_MAX_STRETCH
from cratedig.render.service import MAX_OFFSET_BEATS
from cratedig.service.audio import BytesCache, ranged_response, read_span, wav_bytes
from cratedig.service.jobs import Job, JobCancelled, Jobs
from cratedig.service.settings import ServiceSettings

log = logging.getLogger(__name__)

TRACK_ID = re.compile(r"^[0-9a-f]{16}$")
SEGMENT_ID = workflows.SEGMENT_ID
MASHUP_NAME = re.compile(r"^[0-9a-f]{16}-s\d-p\d{1,3}(-w[0-9a-f]{16}){0,20}\.wav$")
_PATHLIKE = re.compile(r"(?<![\w.:/])(/[^\s'\"(),;]+)")
STATIC = resources.files("cratedig.service") / "static"
#: Largest page of tracks one request may ask for.
MAX_LIMIT = 1000


# ---------------------------------------------------------------------------------------------
# Request bodies (pydantic models mirror DESIGN.md's REST contract)


def lower_priority(increment: int = 10) -> None:
    """Be nicer to the scheduler (the upload-analysis worker; Unix only, best effort)."""
    try:
        os.nice(increment)
    except (AttributeError, OSError):  # pragma: no cover - not Unix, or not permitted
        pass


class ScanRequest(BaseModel):
    folder: str = Field("", description="A folder under one of the --music roots ('' = the first).")
    bpm_range: str | None = Field(
        None,
        description="LO-HI: the DJ's BPM range, kept by the library for every later scan "
        "(tempi outside it are read at their octave inside it); 'off' clears it; absent: the "
        "range the library keeps.",
        max_length=32,
    )


class MatchRequest(BaseModel):
    track_id: str = Field(..., description="A library track id (16 hex digits) or a prefix.")
    top: int = Field(workflows.DEFAULT_TOP, ge=1, le=50)
    max_shift: int = Field(DEFAULT_MAX_SHIFT, ge=0, le=MAX_SHIFT_BOUND)
    max_stretch: float = Field(DEFAULT_MAX_STRETCH, ge=0.0, le=MAX_STRETCH_BOUND)
    segment: int | None = Field(None, ge=0)
    include_own_track: bool = False
    per_track: int = Field(
        workflows.DEFAULT_PER_TRACK,
        ge=0,
        le=50,
        description="At most this many phrases of one track per segment (0: every phrase).",
    )
    with_tracks: list[str] | None = Field(
        None,
        max_length=20,
        description="Only these library tracks (ids or prefixes) are partners, every phrase "
        "of them scored.",
    )
    bpm: float | None = Field(
        None,
        ge=30.0,
        le=300.0,
        description="The query's tempo as the user knows it: the query is analysed again on a "
        "beat grid at this tempo (e.g. an acapella labelled 124 BPM).",
    )
    downbeat: float | None = Field(
        None,
        ge=0.0,
        description="A time (seconds) where one of the query's bars starts, as the user hears "
        "it: the query is analysed again with beat 1 there.",
    )
    beats_per_bar: int | None = Field(None, ge=3, le=4, description="The query's meter: 3 or 4.")

    @property
    def hint(self) -> GridHint | None:
        """What the user gave of the query's grid, or None."""
        if self.bpm is None and self.downbeat is None and self.beats_per_bar is None:
            return None
        return GridHint(bpm=self.bpm, downbeat=self.downbeat, beats_per_bar=self.beats_per_bar)

    @field_validator("with_tracks")
    @classmethod
    def _track_ids(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out = [t.strip().lower() for t in v]
        if not out or not all(re.fullmatch(r"[0-9a-f]{6,16}", t) for t in out):
            raise ValueError("with_tracks: track ids (6 to 16 hex digits), at least one")
        return out


class GridRequest(BaseModel):
    """What the user knows of a library track's grid (``cratedig regrid``); at least one."""

    bpm: float | None = Field(None, ge=30.0, le=300.0, description="The track's tempo.")
    downbeat: float | None = Field(
        None, ge=0.0, description="A time (seconds) where a bar starts: beat 1 goes there."
    )
    beats_per_bar: int | None = Field(None, ge=3, le=4, description="3 or 4.")

    @property
    def hint(self) -> GridHint:
        return GridHint(bpm=self.bpm, downbeat=self.downbeat, beats_per_bar=self.beats_per_bar)


class RenderRequest(BaseModel):
    query_segment: str
    candidate_segment: str
    semitones: int | None = Field(None, ge=-12, le=12)
    ratio: float | None = Field(None, description="Tempo ratio: 1, 2 (half time) or 0.5")
    part: Literal["both", "query", "candidate"] = "both"
    offset_beats: int = Field(
        0,
        ge=-MAX_OFFSET_BEATS,
        le=MAX_OFFSET_BEATS,
        description="Start the candidate this many of its beats later (a nudge for bar lines "
        "read off by a beat or half a bar).",
    )

    @field_validator("ratio")
    @classmethod
    def _metrical(cls, v: float | None) -> float | None:
        return None if v is None else _tempo_ratio(v)


class MashupRequest(BaseModel):
    track_id: str
    max_shift: int = Field(DEFAULT_MAX_SHIFT, ge=0, le=MAX_SHIFT_BOUND)
    max_stretch: float = Field(DEFAULT_MAX_STRETCH, ge=0.0, le=MAX_STRETCH_BOUND)
    with_tracks: list[str] | None = Field(
        None, max_length=20, description="Only these library tracks (ids or prefixes) as partners."
    )

    @field_validator("with_tracks")
    @classmethod
    def _track_ids(cls, v: list[str] | None) -> list[str] | None:
        return MatchRequest._track_ids(v)


class ActivateRequest(BaseModel):
    version: int = Field(..., ge=1)


class RatingRequest(BaseModel):
    query_segment: str
    candidate_segment: str
    score: int = Field(..., ge=1, le=5)
    semitones: int = Field(0, ge=-12, le=12)
    tempo_ratio: float = 1.0
    offset_beats: int = Field(0, ge=-MAX_OFFSET_BEATS, le=MAX_OFFSET_BEATS)
    comment: str | None = Field(None, max_length=workflows.MAX_COMMENT)

    @field_validator("tempo_ratio")
    @classmethod
    def _metrical(cls, v: float) -> float:
        return _tempo_ratio(v)


def _tempo_ratio(v: float) -> float:
    from cratedig.theory import TEMPO_RATIOS

    if not any(abs(v - r) < 1e-9 for r in TEMPO_RATIOS):
        raise ValueError("must be 1, 2 (half time) or 0.5 (double time)")
    return float(v)


# ---------------------------------------------------------------------------------------------
# State


class Upload:
    """An uploaded song kept for a while (its phrases can be played and rendered)."""

    def __init__(self, analysis: TrackAnalysis, path: Path, name: str) -> None:
        self.analysis, self.path, self.name = analysis, path, name


class ServiceState:
    """What the app holds between requests: the library, its match index, jobs, caches."""

    def __init__(self, settings: ServiceSettings) -> None:
        from cratedig.match.store import sync_index

        self.settings = settings
        self.library: Library = open_library(settings.db)
        self.index, _ = sync_index(self.library)
        self._index_lock = threading.Lock()
        self.jobs = Jobs(self._scan, self.public_error)
        self.audio = BytesCache()
        self.upload_dir = Path(tempfile.mkdtemp(prefix="cratedig-uploads-"))
        self.uploads: OrderedDict[str, Upload] = OrderedDict()
        self._uploads_lock = threading.Lock()
        self.mashup_dir = self.library.artefact_dir / "mashups"
        self.matches: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._matches_lock = threading.Lock()
        #: One training at a time (two would race for the next model version).
        self.train_lock = threading.Lock()
        self.generation = 0  # bumped whenever the index is reloaded
        self._analysis_pool: ProcessPoolExecutor | None = None

    @property
    def analysis_pool(self) -> ProcessPoolExecutor:
        """One process that analyses uploads: its CPU work never holds this process's GIL, and
        it runs at a lower scheduling priority, so on a small machine the requests served
        meanwhile get the cores first and keep their latency."""
        with self._uploads_lock:
            if self._analysis_pool is None:
                ctx = multiprocessing.get_context("spawn")
                self._analysis_pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=ctx, initializer=lower_priority
                )
            return self._analysis_pool

    def cached_match(self, key: tuple[Any, ...], make: Any) -> dict[str, Any]:
        """``make()``'s match JSON, remembered until the library changes."""
        if self.settings.match_cache <= 0:
            return make()
        key = (self.generation, *key)
        with self._matches_lock:
            if key in self.matches:
                self.matches.move_to_end(key)
                return copy.deepcopy(self.matches[key])
        out = make()
        with self._matches_lock:
            self.matches[key] = copy.deepcopy(out)
            while len(self.matches) > self.settings.match_cache:
                self.matches.popitem(last=False)
        return out

    def forget_matches(self) -> None:
        """Drop every remembered match (the ranker that scored them changed)."""
        with self._matches_lock:
            self.generation += 1
            self.matches.clear()

    def close(self) -> None:
        self.jobs.shutdown()
        if self._analysis_pool is not None:
            self._analysis_pool.shutdown(cancel_futures=True)
        shutil.rmtree(self.upload_dir, ignore_errors=True)
        self.library.close()

    # -- paths shown to users ------------------------------------------------------------------

    def under_roots(self, path: str | os.PathLike[str]) -> bool:
        real = Path(os.path.realpath(path))
        return any(real == r or r in real.parents for r in self.settings.music)

    def public_path(self, path: str | None) -> str:
        """``path`` if it is under a music root, else only its file name."""
        if not path:
            return ""
        return path if self.under_roots(path) else Path(path).name

    def public_error(self, exc: BaseException) -> str:
        """One line for the user: the message with paths outside the music roots cut."""
        text = exc.reason if isinstance(exc, AudioError) else str(exc)
        text = " ".join(text.split()) or type(exc).__name__
        return _PATHLIKE.sub(lambda m: self.public_path(m.group(1)), text)

    # -- index ---------------------------------------------------------------------------------

    def reload_index(self) -> int:
        from cratedig.match.store import sync_index

        with self._index_lock:
            self.index, _ = sync_index(self.library)
            self.generation += 1
            with self._matches_lock:
                self.matches.clear()
            # a re-analysed track keeps its segment ids for other spans of its audio
            self.audio.clear()
            return len(self.index)

    # -- uploads -------------------------------------------------------------------------------

    def keep_upload(self, upload: Upload) -> None:
        with self._uploads_lock:
            old = self.uploads.pop(upload.analysis.track_id, None)
            if old is not None and old.path != upload.path:
                old.path.unlink(missing_ok=True)
            self.uploads[upload.analysis.track_id] = upload
            while len(self.uploads) > self.settings.keep_uploads:
                _, gone = self.uploads.popitem(last=False)
                gone.path.unlink(missing_ok=True)

    def upload_of(self, segment_id: str) -> Upload | None:
        m = SEGMENT_ID.match(segment_id)
        if not m:
            return None
        with self._uploads_lock:
            return self.uploads.get(m.group(1))

    # -- scans ---------------------------------------------------------------------------------

    def _scan(
        self, job: Job, folder: Path, bpm_range: tuple[float, float] | str | None = None
    ) -> dict[str, Any]:
        def progress(event: str, **d: Any) -> None:
            if event == "planned":
                job.stage, job.total, job.skipped = "analysing", d["total"], d.get("skipped", 0)
            elif event == "done":
                job.done += 1
                job.failed += d.get("status") == "failed"
                job.current = Path(d["path"]).name
            elif event in ("index", "clusters"):
                job.stage = event

        update = workflows.update_library(
            self.library, folder, progress=progress, cancel=job.cancel, bpm_range=bpm_range
        )
        self.reload_index()
        r = update.ingest
        return {
            "scanned": r.scanned,
            "analysed": r.analysed,
            "unchanged": r.unchanged,
            "failed": [[self.public_path(p), self.public_error(Exception(e))] for p, e in r.failed],
            "duplicates": len(r.duplicates),
            # new files that are another file of a recording the library holds
            "same_recording": [
                {
                    "path": self.public_path(c["path"]),
                    "same_as": self.public_path(c["same_as_path"]),
                    "edit": bool(c.get("edit")),
                }
                for c in update.same_recording
            ],
            "segments": update.segments,
            "elapsed": round(r.elapsed, 3),
            "bpm_range": list(r.bpm_range) if r.bpm_range is not None else None,
            "refolded": r.refolded,
        }

    # -- training ------------------------------------------------------------------------------

    def _train(self, job: Job) -> dict[str, Any]:
        """``cratedig train`` as a job: the stem songs analysed one by one (cancellable
        between two), their match lists, the fit; the new version serves once stored."""

        def progress(event: str, **d: Any) -> None:
            if job.cancel.is_set():
                raise JobCancelled()
            if event == "planned":
                job.stage, job.total = "stems", d["total"]
            elif event == "done":
                job.done += 1
                job.failed += d.get("status") == "failed"
            elif event in ("lists", "fitting"):
                job.stage = event

        with self.train_lock:
            result = workflows.train_ranker(
                self.library, progress=progress, on_skip=lambda track_id, why: None
            )
        self.forget_matches()
        return {
            "version": result["version"],
            "metrics": result["metrics"],
            "left_out": [
                [self.public_path(path), self.public_error(Exception(why))]
                for path, why in result["left_out"]
            ],
        }


# ---------------------------------------------------------------------------------------------
# The app


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The FastAPI app for ``settings`` (opens the library and loads its match index now).

    Examples
    --------
    >>> from fastapi.testclient import TestClient  # doctest: +SKIP
    >>> app = create_app(ServiceSettings(db="crate.db", music=[Path("~/Music")]))
    >>> TestClient(app).get("/healthz").json()
    {'status': 'ok'}
    """
    settings = settings or ServiceSettings()
    state = ServiceState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="cratedig",
        summary="Find the pieces of songs that mix: library, matches, renders, ratings.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.cratedig = state
    _install_error_handlers(app, state)

    writer = _writer

    # -- health --------------------------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """The database answers and the match index is loaded (else 503)."""
        from sqlalchemy import text

        try:
            with state.library.reader() as s:
                s.execute(text("SELECT 1"))
        except LibraryError as exc:
            return JSONResponse({"error": state.public_error(exc)}, status_code=503)
        return JSONResponse(
            {"status": "ready", "segments": len(state.index), "auth": settings.writes_need_token}
        )

    @app.get("/api/config", tags=["health"])
    def config() -> dict[str, Any]:
        """What the page needs to know: music roots, whether writes need a token, sizes, and
        how many tracks an older cratedig analysed (they match on that analysis until a scan
        analyses them again)."""
        from cratedig.library import repository as repo

        with state.library.reader() as s:
            stale = repo.stale_track_count(s)
        return {
            "music": [str(m) for m in settings.music],
            "auth": settings.writes_need_token,
            "tracks": len(state.index.stamps),
            "segments": len(state.index),
            "stale_tracks": stale,
            "version": _version(),
            "bpm_range": _stored_bpm_range_list(state),
        }

    # -- library -------------------------------------------------------------------------------

    @app.get("/api/duplicates", tags=["library"])
    def duplicates() -> dict[str, Any]:
        """Recordings the library holds more than once (``cratedig duplicates``): groups of
        copies, the one to keep (the best-sounding) first, with the fingerprint evidence; and
        edits (a radio edit and its extended mix), which are both kept and never paired:
        pairwise, and as the recordings held in several versions."""
        from cratedig.library.duplicates import library_duplicates

        found = library_duplicates(state.library).to_json()
        everyone = (
            [c for g in found["groups"] for c in g["copies"]]
            + [e[side] for e in found["edits"] for side in ("shorter", "longer")]
            + [c for family in found["versions"] for c in family]
        )
        # each as a DJ names it ("Artist - Title" from its tags), where its tags do
        names = workflows.track_names(state.library, [c["track_id"] for c in everyone])
        for c in everyone:
            c["path"] = state.public_path(c["path"])
            if names.get(c["track_id"]):
                c["name"] = names[c["track_id"]]
        return found

    @app.get("/api/tracks", tags=["library"])
    def tracks(
        key: Annotated[
            str | None, Query(description="Camelot code or key: 8A, Am, 'A minor'")
        ] = None,
        bpm: Annotated[str | None, Query(description="120-130, 120..130 or 128")] = None,
        q: Annotated[
            str | None,
            Query(max_length=200, description="Text in the path, artist, title, album or genre"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
        offset: Annotated[int, Query(ge=0)] = 0,
        sort: Annotated[
            str, Query(description="tempo (default), name, camelot, energy or duration")
        ] = "tempo",
        desc: Annotated[bool, Query(description="Descending")] = False,
        kind: Annotated[str | None, Query(description="loops: only loops; songs: the rest")] = None,
    ) -> dict[str, Any]:
        """Tracks by key, tempo range, text and kind, sorted (slowest first by default) and
        paged by ``limit`` and ``offset`` over the whole library: ``{"tracks": [...],
        "total": n}`` (a loop's ``loop_bars`` is its length in bars)."""
        rows, total = workflows.list_tracks(
            state.library, key=key or None, bpm=bpm or None, text=q, limit=limit, offset=offset,
            sort=sort, descending=desc, kind=kind or None,
        )  # fmt: skip
        for r in rows:
            r["path"] = state.public_path(r["path"])
        return {"tracks": rows, "total": total}

    @app.get("/api/tracks/{track_id}", tags=["library"])
    def track(track_id: str) -> dict[str, Any]:
        """One track's analysis with its ``segments`` (phrases)."""
        _check_track_id(track_id)
        detail = workflows.track_detail(state.library, track_id)
        if detail is None:
            raise HTTPException(404, f"track {track_id} is not in the library")
        detail["path"] = state.public_path(detail["path"])
        detail["paths"] = [state.public_path(p) for p in detail["paths"]]
        return detail

    @app.get("/api/tracks/{track_id}/waveform", tags=["library"])
    def waveform(
        track_id: str, points: Annotated[int, Query(ge=16, le=4000)] = 800
    ) -> dict[str, Any]:
        """Peak envelope of the track (``points`` maxima of |x|, 0-1) for drawing."""
        import numpy as np

        from cratedig.audio.decode import decode

        analysis = _analysis_of(state, track_id)
        y = decode(analysis.path, sr=4000, allow_silent=True, max_duration=float("inf")).samples
        edges = np.linspace(0, len(y), points + 1).astype(int)
        peaks = [
            float(np.abs(y[a:b]).max()) if b > a else 0.0
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
        top = max(peaks) or 1.0
        return {"track_id": track_id, "duration": analysis.duration,
                "peaks": [round(p / top, 3) for p in peaks]}  # fmt: skip

    @app.put("/api/tracks/{track_id}/grid", tags=["library"])
    def set_grid(track_id: str, body: GridRequest, _: Writer) -> dict[str, Any]:
        """Fix a track's grid: it is analysed again on the tempo, bar line and beats per bar
        given (added to what was given before), which it keeps through later re-analyses.
        ``{"before": ..., "after": ..., "given": ..., "ratings": ...}``."""
        if body.hint.empty:
            raise HTTPException(422, "give bpm, downbeat or beats_per_bar (DELETE to clear)")
        return _regrid(state, track_id, body.hint)

    @app.delete("/api/tracks/{track_id}/grid", tags=["library"])
    def clear_grid(track_id: str, _: Writer) -> dict[str, Any]:
        """Forget the grid given for a track: it is analysed again on its own grid."""
        return _regrid(state, track_id, None)

    @app.post("/api/library/scan", status_code=202, tags=["library"])
    def scan(body: ScanRequest, _: Writer) -> dict[str, Any]:
        """Scan a folder under a ``--music`` root as a background job: ``{"job": id}``."""
        folder, shown = _music_folder(state, body.folder)
        from cratedig.analysis.rhythm import parse_bpm_range

        try:
            tempo_range = parse_bpm_range(body.bpm_range)
        except ParameterError as exc:
            raise HTTPException(422, f"bpm_range: {exc}") from None
        escapes = _links_out(state, folder)
        if escapes:
            raise HTTPException(
                403,
                f"{shown} holds links that lead outside the music folders ("
                + ", ".join(escapes[:3])
                + (", ..." if len(escapes) > 3 else "")
                + "); remove them or scan a folder without them",
            )
        job = state.jobs.start_job(
            "scan", lambda job: state._scan(job, folder, tempo_range), folder=shown
        )
        if job is None:
            raise HTTPException(409, _busy(state))
        return {"job": job.id, **job.to_json()}

    @app.get("/api/jobs", tags=["library"])
    def jobs() -> dict[str, Any]:
        """Every recent job (scans and trainings), newest first."""
        return {"jobs": [j.to_json() for j in state.jobs.all()]}

    @app.get("/api/jobs/{job_id}", tags=["library"])
    def job(job_id: str) -> dict[str, Any]:
        """A job's state (queued, running, done, failed, cancelled) and progress."""
        j = state.jobs.get(job_id)
        if j is None:
            raise HTTPException(404, "no such job")
        return j.to_json()

    @app.post("/api/jobs/{job_id}/cancel", status_code=202, tags=["library"])
    def cancel_job(job_id: str, _: Writer) -> dict[str, Any]:
        """Stop a scan after the file being stored (what was stored stays), or a training after
        the stem song being analysed (nothing is stored: the serving model stays)."""
        j = state.jobs.cancel(job_id)
        if j is None:
            raise HTTPException(404, "no such job")
        return j.to_json()

    @app.delete("/api/jobs/{job_id}", status_code=202, tags=["library"])
    def delete_job(job_id: str, _: Writer) -> dict[str, Any]:
        """The same as ``POST /api/jobs/{id}/cancel``."""
        return cancel_job(job_id, None)

    # -- match ---------------------------------------------------------------------------------

    @app.post(
        "/api/match",
        tags=["match"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": MatchRequest.model_json_schema()},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "top": {"type": "integer"},
                                "max_shift": {"type": "integer"},
                                "max_stretch": {"type": "number"},
                            },
                        }
                    },
                },
            }
        },
    )
    async def match(request: Request) -> dict[str, Any]:
        """Per query phrase, the ranked partners (``match --json``): JSON ``{"track_id": ...}``
        for a library track, or a multipart ``file`` upload analysed on the fly (kept a while
        so its phrases can be played, not added to the library)."""
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            writer(request)
            return await _match_upload(state, request)
        try:
            raw = await request.json()
        except ValueError as exc:
            raise HTTPException(422, "body: a JSON object or a multipart file upload") from exc
        try:
            body = MatchRequest.model_validate(raw)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        return await run_in_threadpool(_match_track, state, body)

    # -- audio ---------------------------------------------------------------------------------

    @app.get(
        "/api/segments/{segment_id}/audio",
        tags=["audio"],
        response_class=Response,
        responses={200: {"content": {"audio/wav": {}}}, 206: {"description": "A byte range"}},
    )
    def segment_audio(segment_id: str, request: Request) -> Response:
        """A segment's audio as WAV (HTTP Range supported, so players can seek)."""
        _check_segment_id(segment_id)
        data = state.audio.get_or_make(
            ("segment", segment_id), lambda: _segment_wav(state, segment_id)
        )
        return ranged_response(request, data, "audio/wav")

    def render_response(body: RenderRequest, request: Request) -> Response:
        _check_segment_id(body.query_segment)
        _check_segment_id(body.candidate_segment)
        if body.part == "query":
            key: tuple[Any, ...] = ("segment", body.query_segment)
            data = state.audio.get_or_make(key, lambda: _segment_wav(state, body.query_segment))
        else:
            key = ("render", body.query_segment, body.candidate_segment, body.semitones,
                   body.ratio, body.part, body.offset_beats)  # fmt: skip
            data = state.audio.get_or_make(key, lambda: _render_wav(state, body))
        return ranged_response(request, data, "audio/wav")

    @app.post("/api/render", tags=["audio"], response_class=Response,
              responses={200: {"content": {"audio/wav": {}}}})  # fmt: skip
    def render(body: RenderRequest, request: Request, _: Writer) -> Response:
        """The pair preview: the query phrase alone, the partner transformed alone, or both."""
        return render_response(body, request)

    @app.get("/api/render", tags=["audio"], response_class=Response,
             responses={200: {"content": {"audio/wav": {}}}})  # fmt: skip
    def render_get(
        request: Request,
        _: Writer,
        query_segment: str,
        candidate_segment: str,
        part: Literal["both", "query", "candidate"] = "both",
        semitones: Annotated[int | None, Query(ge=-12, le=12)] = None,
        ratio: float | None = None,
        offset_beats: Annotated[int, Query(ge=-MAX_OFFSET_BEATS, le=MAX_OFFSET_BEATS)] = 0,
    ) -> Response:
        """``POST /api/render`` as a URL, for ``<audio src>`` (Range supported)."""
        try:
            body = RenderRequest(
                query_segment=query_segment, candidate_segment=candidate_segment, part=part,
                semitones=semitones, ratio=ratio, offset_beats=offset_beats,
            )  # fmt: skip
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        return render_response(body, request)

    @app.post("/api/mashup", tags=["audio"])
    def mashup(body: MashupRequest, _: Writer) -> dict[str, Any]:
        """A whole-song mashup: ``{"audio": url, "plan": cue sheet}``."""
        import json

        analysis = _analysis_of(state, body.track_id)
        partners = (
            workflows.resolve_tracks(state.library, body.with_tracks) if body.with_tracks else ()
        )
        with_part = "".join(f"-w{t}" for t in partners)
        name = (
            f"{analysis.track_id}-s{body.max_shift}-p{round(body.max_stretch * 100)}{with_part}.wav"
        )
        wav, plan_file = state.mashup_dir / name, state.mashup_dir / f"{name}.json"
        if wav.exists() and plan_file.exists():
            plan = json.loads(plan_file.read_text())
        else:
            state.mashup_dir.mkdir(parents=True, exist_ok=True)
            # Written block by block into the file: memory does not grow with the song.
            m = workflows.render_mashup(
                state.library, analysis, index=state.index, output=wav, fmt="wav",
                max_shift=body.max_shift, max_stretch=body.max_stretch,
                with_tracks=list(partners) or None,
            )  # fmt: skip
            plan = m.plan.to_json()
            if m.ruled_out:
                plan["ruled_out"] = m.ruled_out
            plan_file.write_text(json.dumps(plan))
        plan["query"]["path"] = state.public_path(plan["query"].get("path"))
        for cue in plan["cues"]:
            if cue.get("partner"):
                cue["partner"]["path"] = state.public_path(cue["partner"].get("path"))
        return {"audio": f"/api/mashups/{name}", "plan": plan}

    @app.get("/api/mashups/{name}", tags=["audio"], response_class=FileResponse)
    def mashup_audio(name: str) -> FileResponse:
        """A rendered mashup (Range supported)."""
        if not MASHUP_NAME.match(name):
            raise HTTPException(422, "not a mashup file name")
        path = state.mashup_dir / name
        if not path.is_file():
            raise HTTPException(404, "no such mashup; POST /api/mashup first")
        return FileResponse(path, media_type="audio/wav")

    # -- ratings -------------------------------------------------------------------------------

    @app.post("/api/ratings", status_code=201, tags=["ratings"])
    def rate(body: RatingRequest, _: Writer) -> dict[str, int]:
        """Store a 1-5 rating of a suggestion: ``{"id": n}``."""
        _check_segment_id(body.query_segment)
        _check_segment_id(body.candidate_segment)
        try:
            rating_id = workflows.rate(
                state.library, body.query_segment, body.candidate_segment, body.score,
                semitones=body.semitones, tempo_ratio=body.tempo_ratio,
                offset_beats=body.offset_beats, comment=body.comment,
                query_known=state.upload_of(body.query_segment) is not None,
            )  # fmt: skip
        except ParameterError as exc:
            if "not in the library" in str(exc):
                raise HTTPException(404, str(exc)) from exc
            raise
        return {"id": rating_id}

    @app.get("/api/ratings", tags=["ratings"])
    def ratings() -> dict[str, Any]:
        """Every rating, oldest first."""
        return {"ratings": [r.to_json() for r in workflows.list_ratings(state.library)]}

    # -- the learned ranker --------------------------------------------------------------------

    @app.get("/api/models", tags=["ratings"])
    def models() -> dict[str, Any]:
        """Every trained ranker version, oldest first: when, its metrics, which one serves."""
        return {"models": workflows.list_models(state.library)}

    @app.post("/api/models/train", status_code=202, tags=["ratings"])
    def train(_: Writer) -> dict[str, Any]:
        """Train the ranker from the library's stems and ratings (``cratedig train``) as a
        background job: ``{"job": id, ...}``; ``GET /api/jobs/{id}`` follows it (stage
        ``stems``: ``done`` of ``total`` stem songs analysed, then ``lists`` and ``fitting``)
        and its ``report`` holds ``{"version", "metrics", "left_out"}`` when done (``left_out``:
        ``[path, reason]`` of each stem song training went on without): the new version serves
        at once. 422 at once when there is nothing to learn from (no stems with a lead, and no
        good and bad ratings); 409 while another job runs."""
        workflows.check_trainable(state.library)
        job = state.jobs.start_job("train", state._train, stage="stems")
        if job is None:
            raise HTTPException(409, _busy(state))
        return {"job": job.id, **job.to_json()}

    @app.put("/api/models/active", tags=["ratings"])
    def activate(body: ActivateRequest, _: Writer) -> dict[str, Any]:
        """Make an earlier (or later) ranker version the one that serves."""
        try:
            workflows.activate_model(state.library, body.version)
        except ParameterError as exc:
            raise HTTPException(404, str(exc)) from exc
        state.forget_matches()
        return {"models": workflows.list_models(state.library)}

    @app.get("/api/export/rekordbox.xml", tags=["library"], response_class=Response)
    def export_rekordbox(hot_cues: bool = False) -> Response:
        """The library as a rekordbox XML collection (``cratedig export-rekordbox``): beat
        grids, keys, a memory cue per section (and hot cues A-H with ``hot_cues=true``)."""
        from cratedig.library.rekordbox import rekordbox_document

        data, _ = rekordbox_document(state.library, hot_cues=hot_cues)
        return Response(
            data,
            media_type="application/xml",
            headers={"Content-Disposition": 'attachment; filename="cratedig-rekordbox.xml"'},
        )

    @app.get("/reports", tags=["library"], response_class=HTMLResponse)
    def report() -> HTMLResponse:
        """The library report (``cratedig report``): key wheel, tempo histogram, cluster map,
        analysis confidence, quality flags, model history; one page, figures embedded."""
        from cratedig.reports import library_overview, library_page

        return HTMLResponse(library_page(library_overview(state.library)))

    # -- the page ------------------------------------------------------------------------------

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    return app


# ---------------------------------------------------------------------------------------------
# Helpers


def _writer(request: Request) -> None:
    """Write endpoints need ``Authorization: Bearer $CRATEDIG_TOKEN`` beyond loopback (or
    ``?token=`` for the page's audio elements, which cannot send headers)."""
    settings: ServiceSettings = request.app.state.cratedig.settings
    if not settings.writes_need_token:
        return
    given = ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    given = given or request.query_params.get("token", "")
    expected = settings.token or ""
    if not (given and hmac.compare_digest(given.encode(), expected.encode())):
        raise HTTPException(401, "this server needs a bearer token for writes")


Writer = Annotated[None, Depends(_writer)]


def _busy(state: ServiceState) -> str:
    """Why a job cannot start now: the one running."""
    running = state.jobs.running()
    what = {"scan": "a scan", "train": "a training"}.get(running.kind if running else "", "a job")
    return f"{what} is already running; cancel it or wait"


def _version() -> str:
    from cratedig import __version__

    return __version__


def _check_track_id(track_id: str) -> None:
    if not TRACK_ID.match(track_id):
        raise HTTPException(422, "track id: 16 hex digits")


def _check_segment_id(segment_id: str) -> None:
    if not SEGMENT_ID.match(segment_id):
        raise HTTPException(422, "segment id: <16 hex digit track id>_<n>")


def _regrid(state: ServiceState, track_id: str, hint: GridHint | None) -> dict[str, Any]:
    _check_track_id(track_id)
    try:
        done = workflows.regrid(state.library, track_id, hint)
    except ParameterError as exc:
        if "not a track of the library" in str(exc) or "files are gone" in str(exc):
            raise HTTPException(404, state.public_error(exc)) from exc
        raise
    state.reload_index()
    out = done.to_json()
    out["path"] = state.public_path(out["path"])
    return out


def _stored_bpm_range_list(state: ServiceState) -> list[float] | None:
    r = _stored_bpm_range(state)
    return list(r) if r is not None else None


def _stored_bpm_range(state: ServiceState) -> tuple[float, float] | None:
    """The DJ's BPM range the library keeps: an upload is read in it as the library is."""
    from cratedig.library import repository as repo

    with state.library.reader() as s:
        return repo.stored_bpm_range(s)


def _analysis_of(state: ServiceState, track_id: str) -> TrackAnalysis:
    """A library track's analysis (path set to a file on disk), or an upload's; 404 else."""
    from cratedig.library import repository as repo

    _check_track_id(track_id)
    with state._uploads_lock:
        up = state.uploads.get(track_id)
    if up is not None:
        return up.analysis
    with state.library.reader() as s:
        a = repo.load_analysis(s, track_id)
        paths = repo.track_paths(s, track_id) if a is not None else []
    if a is None:
        raise HTTPException(404, f"track {track_id} is not in the library")
    existing = [p for p in paths if os.path.exists(p)]
    if not existing:
        raise HTTPException(404, f"track {track_id}: its file is gone from disk")
    a.path = existing[0]
    return a


def _segment_wav(state: ServiceState, segment_id: str) -> bytes:
    m = SEGMENT_ID.match(segment_id)
    assert m is not None
    analysis = _analysis_of(state, m.group(1))
    n = int(m.group(2))
    if n >= len(analysis.segments):
        raise HTTPException(404, f"segment {segment_id}: the track has {len(analysis.segments)}")
    seg = analysis.segments[n]
    span = read_span(analysis.path, seg.start, seg.end)
    if span is None:
        y, sr = workflows.segment_audio(state.library, segment_id, query_file=analysis)
    else:
        y, sr = span
    return wav_bytes(y, sr)


def _render_wav(state: ServiceState, body: RenderRequest) -> bytes:
    up = state.upload_of(body.query_segment)
    for sid in (body.query_segment, body.candidate_segment):
        m = SEGMENT_ID.match(sid)
        assert m is not None
        a = up.analysis if up is not None and sid == body.query_segment else None
        a = a or _analysis_of(state, m.group(1))
        if int(m.group(2)) >= len(a.segments):
            raise HTTPException(404, f"segment {sid}: the track has {len(a.segments)}")
    pair = workflows.render_pair(
        state.library,
        body.query_segment,
        body.candidate_segment,
        semitones=body.semitones,
        tempo_ratio=body.ratio,
        query_file=up.analysis if up is not None else None,
        use_cache=body.part == "both",
        offset_beats=body.offset_beats,
    )
    audio = pair.partner if body.part == "candidate" and pair.partner is not None else pair.audio
    return wav_bytes(audio, pair.sr)


def _match_track(state: ServiceState, body: MatchRequest) -> dict[str, Any]:
    from cratedig.library import repository as repo

    tid = body.track_id.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{4,16}", tid):
        raise HTTPException(422, "track_id: 4 to 16 hex digits")
    with state._uploads_lock:
        up = state.uploads.get(tid)
    if up is not None:
        analysis, in_library = up.analysis, False
        if body.hint is not None:
            from cratedig.analysis.pipeline import analyze_file

            with state.library.reader() as s:
                tempo_range = repo.stored_bpm_range(s)
            analysis = analyze_file(up.path, hint=body.hint, bpm_range=tempo_range)
    elif body.hint is not None:
        analysis, in_library = workflows.resolve_query(state.library, tid, hint=body.hint)
        return _match_json(state, analysis, in_library, body, None)
    else:
        with state.library.reader() as s:
            full = repo.resolve_track_id(s, tid)
        if full is None:
            raise HTTPException(404, f"track {tid} is not in the library")
        return state.cached_match(
            (full, body.top, body.max_shift, body.max_stretch, body.segment,
             body.include_own_track, body.per_track, tuple(body.with_tracks or ())),
            lambda: _match_json(state, _analysis_of(state, full), True, body, None),
        )  # fmt: skip
    return _match_json(state, analysis, in_library, body, up.name)


def _match_json(
    state: ServiceState,
    analysis: TrackAnalysis,
    in_library: bool,
    body: MatchRequest,
    name: str | None,
) -> dict[str, Any]:
    result = workflows.match(
        state.library, analysis, index=state.index, in_library=in_library, top=body.top,
        max_shift=body.max_shift, max_stretch=body.max_stretch, segment=body.segment,
        include_own_track=body.include_own_track, per_track=body.per_track,
        with_tracks=body.with_tracks,
    )  # fmt: skip
    return _public_match(state, result.to_json(), name)


def _public_match(state: ServiceState, out: dict[str, Any], name: str | None) -> dict[str, Any]:
    out["query"]["path"] = name if name is not None else state.public_path(out["query"]["path"])
    # Each partner as a DJ names it ("Artist - Title" from its tags), where its tags do.
    same = out.get("same_recording") or []
    names = workflows.track_names(
        state.library,
        [c["track_id"] for m in out["matches"] for c in m["candidates"]]
        + [c["track_id"] for c in same],
    )
    for c in same:  # left out: the query's own recording in another file
        c["path"] = state.public_path(c.get("path"))
        if c["track_id"] in names:
            c["name"] = names[c["track_id"]]
    for m in out["matches"]:
        for c in m["candidates"]:
            c["path"] = state.public_path(c.get("path"))
            if c["track_id"] in names:
                c["name"] = names[c["track_id"]]
    return out


async def _match_upload(state: ServiceState, request: Request) -> dict[str, Any]:
    limit = state.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise HTTPException(413, f"upload larger than {limit // (1024 * 1024)} MB")
    form = await request.form(max_files=1, max_fields=16)
    try:
        up = form.get("file")
        if up is None or isinstance(up, str):
            raise HTTPException(422, "file: an audio file in the multipart field 'file'")
        names = ("top", "max_shift", "max_stretch", "segment", "per_track", "bpm", "downbeat",
                 "beats_per_bar")  # fmt: skip
        fields = {k: form[k] for k in names if k in form}
        try:
            options = MatchRequest.model_validate({"track_id": "0000", **fields})
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        name = Path(up.filename or "upload").name[:200]
        # The suffix only helps ffmpeg pick a demuxer; the file is judged by decoding it.
        suffix = re.sub(r"[^A-Za-z0-9]", "", Path(name).suffix)[:8]
        tmp = state.upload_dir / f"{uuid.uuid4().hex}.{suffix or 'bin'}"
        kept = False
        try:
            size = 0
            with tmp.open("wb") as f:
                while chunk := await up.read(1024 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise HTTPException(413, f"upload larger than {limit // (1024 * 1024)} MB")
                    f.write(chunk)
            from cratedig.analysis.pipeline import analyze_file
            from cratedig.audio.tags import file_tags

            # its tags, else what its own name states ("loop_124bpm_Am.wav"; stored as uuid)
            tags = await run_in_threadpool(file_tags, tmp, name=name)
            tempo_range = await run_in_threadpool(_stored_bpm_range, state)
            loop = asyncio.get_running_loop()
            analysis = await loop.run_in_executor(
                state.analysis_pool,
                partial(
                    analyze_file, str(tmp), hint=options.hint, tags=tags, bpm_range=tempo_range
                ),
            )
            stored = await run_in_threadpool(workflows.stored_analysis, state.library, analysis)
            if stored is not None:
                lib_analysis = await run_in_threadpool(_analysis_of, state, stored.track_id)
                if options.hint is not None:
                    # The library's track on the grid the user gave (not kept as an upload:
                    # its id is the library track's); its phrases play from the library file.
                    analysis.path = lib_analysis.path
                    lib_analysis = analysis
                return await run_in_threadpool(
                    _match_json, state, lib_analysis, True, options, name
                )
            final = state.upload_dir / f"{analysis.track_id}.{suffix or 'bin'}"
            tmp.replace(final)
            kept = True
            analysis.path = str(final)
            state.keep_upload(Upload(analysis, final, name))
            out = await run_in_threadpool(_match_json, state, analysis, False, options, name)
            out["query"]["upload"] = True
            return out
        finally:
            if not kept:
                tmp.unlink(missing_ok=True)
    finally:
        await form.close()


def _music_folder(state: ServiceState, folder: str) -> tuple[Path, str]:
    """The real folder for ``folder`` (absolute, or relative to a music root) if it lies under
    a music root (after resolving ``..`` and symlinks); 403 otherwise."""
    roots = state.settings.music
    if not roots:
        raise HTTPException(403, "no music folder configured: start the server with --music")
    if "\x00" in folder or len(folder) > 4096:
        raise HTTPException(422, "folder: not a path")
    p = Path(folder).expanduser() if folder else roots[0]
    candidates = [p] if p.is_absolute() else [r / p for r in roots]
    for c in candidates:
        real = Path(os.path.realpath(c))
        for r in roots:
            if real == r or r in real.parents:
                if not real.is_dir():
                    raise HTTPException(404, "no such folder under the music folders")
                shown = str(Path(r.name) / real.relative_to(r)) if real != r else r.name
                return real, shown
    raise HTTPException(403, "that folder is outside the music folders this server may scan")


def _links_out(state: ServiceState, folder: Path) -> list[str]:
    """Symbolic links under ``folder`` whose targets lie outside every music root (the scanner
    follows links, so a scan would read there), as paths relative to ``folder``."""
    out = []
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(top) / name
            if p.is_symlink() and not state.under_roots(p):
                out.append(str(p.relative_to(folder)))
    return sorted(out)


def _install_error_handlers(app: FastAPI, state: ServiceState) -> None:
    """Every error as ``{"error": "<one line>"}``."""

    def one_line(text: str) -> str:
        return " ".join(str(text).split())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": state.public_error(Exception(one_line(exc.detail)))},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if errors:
            e = errors[0]
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
            text = f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid"))
        else:
            text = "invalid request"
        return JSONResponse({"error": one_line(text)}, status_code=422)

    @app.exception_handler(AudioError)
    async def audio_error(request: Request, exc: AudioError) -> JSONResponse:
        return JSONResponse(
            {"error": f"not usable audio: {state.public_error(exc)}"}, status_code=422
        )

    @app.exception_handler(DatabaseUnavailable)
    async def db_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return JSONResponse({"error": state.public_error(exc)}, status_code=503)

    @app.exception_handler(CratedigError)
    async def known(request: Request, exc: CratedigError) -> JSONResponse:
        return JSONResponse({"error": state.public_error(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error (see the server log)"}, status_code=500)
