"""Background scan jobs: a folder ingested in a thread, with progress the page polls.

One scan runs at a time (the library takes one writer; a second scan would only wait for the
first's locks). A job is cancelled between two files: what was stored stays.
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


@dataclass
class ScanJob:
    """The state of one scan, as ``GET /api/jobs/{id}`` shows it."""

    id: str
    folder: str  # as shown to the user (relative to its music root)
    state: str = "queued"  # queued | running | done | failed | cancelled
    stage: str = "scanning"  # scanning | analysing | index | clusters | finished
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


class ScanJobs:
    """Starts scans in threads and remembers them.

    Parameters
    ----------
    run : callable
        ``run(job, folder)`` does the scan, updating ``job`` as it goes; its return value is
        stored as ``job.report``. It raises ``KeyboardInterrupt`` (subclass) when cancelled.
    describe_error : callable
        Turns an exception into the one line shown to the user.
    """

    def __init__(
        self,
        run: Callable[[ScanJob, Path], dict[str, Any]],
        describe_error: Callable[[BaseException], str],
    ) -> None:
        self._run = run
        self._describe = describe_error
        self._jobs: dict[str, ScanJob] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def running(self) -> ScanJob | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.state in ("queued", "running")), None)

    def start(self, folder: Path, shown: str) -> ScanJob | None:
        """Start scanning ``folder``; None when a scan is already running."""
        with self._lock:
            if any(j.state in ("queued", "running") for j in self._jobs.values()):
                return None
            job = ScanJob(id=uuid.uuid4().hex[:12], folder=shown)
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.finished is not None]
            for old in sorted(finished, key=lambda j: j.finished or 0)[:-KEEP_JOBS]:
                del self._jobs[old.id]
        t = threading.Thread(target=self._work, args=(job, folder), name=f"scan-{job.id}")
        t.daemon = True
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return job

    def _work(self, job: ScanJob, folder: Path) -> None:
        job.state = "running"
        try:
            job.report = self._run(job, folder)
            job.state = "done"
        except KeyboardInterrupt:
            job.state = "cancelled"
        except Exception as exc:  # the job reports it; the server goes on
            log.exception("scan %s failed", job.id)
            job.state = "failed"
            job.error = self._describe(exc)
        finally:
            job.stage = "finished"
            job.current = ""
            job.finished = time.time()

    def get(self, job_id: str) -> ScanJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[ScanJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j.started)

    def cancel(self, job_id: str) -> ScanJob | None:
        job = self.get(job_id)
        if job is not None and job.state in ("queued", "running"):
            job.cancel.set()
        return job

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel running scans and wait a little for them to stop."""
        for j in self.all():
            j.cancel.set()
        for t in self._threads:
            t.join(timeout)
