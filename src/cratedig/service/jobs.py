"""Background jobs: a folder scanned, or the ranker trained, in a thread, with progress the
page polls.

One job runs at a time (the library takes one writer, and a scan and a training on two cores
would only slow each other down). A scan is cancelled between two files: what was stored stays;
a training between two stem songs: nothing is stored, the model that served goes on serving.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Finished jobs remembered for ``GET /api/jobs``.
KEEP_JOBS = 50


class JobCancelled(KeyboardInterrupt):
    """Raised inside a job's work when its ``cancel`` event is set."""


@dataclass
class Job:
    """The state of one job, as ``GET /api/jobs/{id}`` shows it."""

    id: str
    folder: str  # a scan: the folder as shown to the user (relative to its music root)
    kind: str = "scan"  # scan | train
    state: str = "queued"  # queued | running | done | failed | cancelled
    # scan: scanning | analysing | index | clusters | finished
    # train: stems | lists | fitting | finished
    stage: str = "scanning"
    done: int = 0
    total: int = 0
    skipped: int = 0
    failed: int = 0
    current: str = ""
    error: str | None = None
    report: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.id,
            "kind": self.kind,
            "folder": self.folder,
            "state": self.state,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "skipped": self.skipped,
            "failed": self.failed,
            "current": self.current,
            "error": self.error,
            "report": self.report,
            "started": self.started,
            "finished": self.finished,
            "elapsed": round((self.finished or time.time()) - self.started, 3),
        }


class Jobs:
    """Starts jobs in threads and remembers them.

    Parameters
    ----------
    run : callable
        ``run(job, folder)`` does a scan, updating ``job`` as it goes; its return value is
        stored as ``job.report``. It raises ``KeyboardInterrupt`` (subclass) when cancelled.
    describe_error : callable
        Turns an exception into the one line shown to the user.
    """

    def __init__(
        self,
        run: Callable[[Job, Path], dict[str, Any]],
        describe_error: Callable[[BaseException], str],
    ) -> None:
        self._run = run
        self._describe = describe_error
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def running(self) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.state in ("queued", "running")), None)

    def start(self, folder: Path, shown: str) -> Job | None:
        """Start scanning ``folder``; None when a job is already running."""
        return self.start_job("scan", lambda job: self._run(job, folder), folder=shown)

    def start_job(
        self, kind: str, run: Callable[[Job], dict[str, Any]], *, folder: str = "", stage: str = ""
    ) -> Job | None:
        """Start ``run(job)`` in a thread as a job of ``kind``; None when a job is running."""
        with self._lock:
            if any(j.state in ("queued", "running") for j in self._jobs.values()):
                return None
            job = Job(id=uuid.uuid4().hex[:12], folder=folder, kind=kind)
            if stage:
                job.stage = stage
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.finished is not None]
            for old in sorted(finished, key=lambda j: j.finished or 0)[:-KEEP_JOBS]:
                del self._jobs[old.id]
        t = threading.Thread(target=self._work, args=(job, run), name=f"{kind}-{job.id}")
        t.daemon = True
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return job

    def _work(self, job: Job, run: Callable[[Job], dict[str, Any]]) -> None:
        job.state = "running"
        try:
            job.report = run(job)
            job.state = "done"
        except KeyboardInterrupt:
            job.state = "cancelled"
        except Exception as exc:  # the job reports it; the server goes on
            log.exception("%s %s failed", job.kind, job.id)
            job.state = "failed"
            job.error = self._describe(exc)
        finally:
            job.stage = "finished"
            job.current = ""
            job.finished = time.time()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j.started)

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None and job.state in ("queued", "running"):
            job.cancel.set()
        return job

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel running jobs and wait a little for them to stop."""
        for j in self.all():
            j.cancel.set()
        for t in self._threads:
            t.join(timeout)
