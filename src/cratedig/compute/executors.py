"""Executors: run one picklable function over many items, here, in a process pool or on Dask.

Every executor has the same shape: ``imap_unordered(fn, items, context=...)`` yields
``(item, outcome)`` pairs as work finishes, ``outcome`` being ``fn(context, item)`` or the
exception that stopped it (a crashed worker process, a lost Dask worker). ``context`` is sent to
each worker once (a process-pool initializer, a broadcast Dask future), not with every item, so
it may be large (e.g. the set of track ids already in the library).

Results come back to the caller, which is where side effects such as database writes belong:
workers compute, one process writes. At most ``max_in_flight`` items are outstanding, so memory
stays bounded however many items there are.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import ProcessPoolExecutor as _Pool
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from cratedig.errors import CratedigError, ParameterError

log = logging.getLogger("cratedig.compute")

T = TypeVar("T")
R = TypeVar("R")

_END = object()


class ComputeError(CratedigError):
    """The executor itself failed (no Dask scheduler at that address, ...)."""


class WorkerCrashed(ComputeError):
    """A worker process died while running this item (a crash in a decoder, out of memory)."""


class Executor(Protocol):
    """What every executor offers."""

    workers: int

    def imap_unordered(
        self, fn: Callable[[Any, Any], Any], items: Iterable[Any], *, context: Any = None
    ) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, fn(context, item) or the exception it raised)`` as they finish."""
        ...

    def close(self) -> None:
        """Release workers and connections."""
        ...

    def describe(self) -> str:
        """One line for progress displays: "2 processes", "dask tcp://...: 8 threads"."""
        ...


class InProcessExecutor:
    """Run items one after the other in this process (``--workers 1``; easiest to debug)."""

    workers = 1

    def imap_unordered(
        self, fn: Callable[[Any, T], R], items: Iterable[T], *, context: Any = None
    ) -> Iterator[tuple[T, R | BaseException]]:
        for item in items:
            try:
                yield item, fn(context, item)
            except Exception as exc:  # reported to the caller with the item, like the others
                log.debug("task failed", exc_info=True)
                yield item, exc

    def close(self) -> None:
        return None

    def describe(self) -> str:
        return "1 process"

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- process pool ----------------------------------------------------------------------------
_context: Any = None

#: The math libraries' thread-pool settings a worker process is held to one thread by (unless
#: the user set any of them): their default is a thread per core in every process, so N workers
#: on N cores ran N x N threads. Two workers mining `train`'s lists on two cores took 18.1 s
#: for what one process did in 15.6 s; held to one thread each, 10.1 s.
THREAD_VARIABLES: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def one_thread_each() -> None:
    """Hold this process's math libraries to one thread (a worker of a pool of processes):
    the environment for those loaded later, threadpoolctl for those already loaded. A user who
    set any of :data:`THREAD_VARIABLES` keeps their settings."""
    if any(v in os.environ for v in THREAD_VARIABLES):
        return
    for v in THREAD_VARIABLES:
        os.environ[v] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it the environment must do
        return
    threadpool_limits(1)


def _init_worker(context: Any, parent: int) -> None:
    global _context
    one_thread_each()
    _context = context
    # Ctrl-C goes to the whole process group: let the parent decide, don't die mid-item.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        # Die with the parent: a kill -9 of an ingest must not leave orphans analysing away.
        import ctypes

        pr_set_pdeathsig = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # orphaned before prctl took effect
            os._exit(1)


def _run_in_worker(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_context, item)


class ProcessPoolExecutor:
    """A local pool of ``workers`` processes.

    Workers are ``spawn``-started: safe with threads in this process (unlike ``fork``), and
    their parent is this process, so they can be tied to its life (not so with a fork server,
    which outlives a killed parent).

    A worker that dies takes the items in flight with it; those are run again one at a time,
    so only the item that really kills a worker is reported (as :class:`WorkerCrashed`).

    Parameters
    ----------
    workers : int >= 1
    max_in_flight : int, optional
        Items outstanding at once; default ``2 * workers``.
    """

    def __init__(self, workers: int, *, max_in_flight: int | None = None) -> None:
        if workers < 1:
            raise ParameterError(f"workers={workers} must be >= 1")
        self.workers = workers
        self.max_in_flight = max_in_flight or 2 * workers
        self._pool: _Pool | None = None

    def describe(self) -> str:
        return f"{self.workers} processes"

    def _start(self, context: Any) -> _Pool:
        self._pool = _Pool(
            max_workers=self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(context, os.getpid()),
        )
        return self._pool

    def imap_unordered(
        self, fn: Callable[[Any, T], R], items: Iterable[T], *, context: Any = None
    ) -> Iterator[tuple[T, R | BaseException]]:
        it = iter(items)
        suspects: deque[T] = deque()
        unsent: deque[T] = deque()  # items a submit found the pool broken for: never run
        inflight: dict[Future[R], tuple[T, bool]] = {}
        pool = self._start(context)
        try:
            while True:
                solo = bool(suspects)
                window = 1 if solo else self.max_in_flight
                refused = False
                while len(inflight) < window:
                    from_suspects = bool(suspects)
                    if from_suspects:
                        item = suspects.popleft()
                    elif unsent:
                        item = unsent.popleft()
                    else:
                        nxt = next(it, _END)
                        if nxt is _END:
                            break
                        item = nxt  # type: ignore[assignment]
                    try:
                        fut = pool.submit(_run_in_worker, fn, item)
                    except BrokenProcessPool:
                        # A worker died since the last results came in: this item did not
                        # run, so it goes back where it came from; the futures in flight
                        # report the death below, or nothing is in flight to report it.
                        (suspects if from_suspects else unsent).appendleft(item)
                        refused = True
                        break
                    inflight[fut] = (item, solo)
                if refused and not inflight:
                    log.warning("a worker process died; starting the pool again")
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._start(context)
                    continue
                if not inflight:
                    return
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    item, alone = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if alone:
                            yield item, WorkerCrashed("the analysis process crashed on this file")
                        else:
                            suspects.append(item)
                        continue
                    except Exception as exc:
                        yield item, exc
                        continue
                    yield item, result
                if broken:
                    log.warning(
                        "a worker process died; re-running %d items one at a time",
                        len(inflight) + len(suspects),
                    )
                    suspects.extend(item for item, _ in inflight.values())
                    inflight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._start(context)
        finally:
            for fut in inflight:
                fut.cancel()
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessPoolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Dask ------------------------------------------------------------------------------------
class DaskExecutor:
    """Send items to a Dask distributed cluster; results come back here.

    Workers must be able to import cratedig (same version) and read the files at the same
    paths. Dask itself re-runs tasks whose worker died (and gives up with ``KilledWorker``).

    Parameters
    ----------
    address : str
        Scheduler address, e.g. ``tcp://scheduler:8786``.
    max_in_flight : int, optional
        Default: twice the cluster's threads.
    timeout : float
        Seconds to wait for the scheduler.

    Raises
    ------
    ComputeError
        When the scheduler cannot be reached or distributed is not installed.
    """

    def __init__(self, address: str, *, max_in_flight: int | None = None, timeout: float = 30):
        try:
            from distributed import Client
        except ImportError as exc:
            raise ComputeError(
                "--dask needs dask.distributed (pip install 'dask[distributed]')"
            ) from exc
        self.address = address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ComputeError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        threads = sum(self.client.nthreads().values())
        self.workers = max(threads, 1)
        self.max_in_flight = max_in_flight or max(2 * threads, 2)

    def describe(self) -> str:
        return f"dask {self.address}: {self.workers} threads"

    def imap_unordered(
        self, fn: Callable[[Any, T], R], items: Iterable[T], *, context: Any = None
    ) -> Iterator[tuple[T, R | BaseException]]:
        from distributed import as_completed

        ctx = self.client.scatter(context, broadcast=True, hash=False)
        it = iter(items)
        inflight: dict[Any, T] = {}
        running = as_completed(loop=self.client.loop)

        def submit_more() -> None:
            while len(inflight) < self.max_in_flight:
                nxt = next(it, _END)
                if nxt is _END:
                    return
                fut = self.client.submit(fn, ctx, nxt, pure=False)
                inflight[fut] = nxt  # type: ignore[assignment]
                running.add(fut)

        try:
            submit_more()
            for fut in running:
                item = inflight.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:
                    yield item, exc
                else:
                    yield item, result
                finally:
                    fut.release()
                submit_more()
        finally:
            for fut in inflight:
                fut.cancel()
            ctx.release()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(workers: int = 1, dask: str | None = None) -> Executor:
    """The executor for ``--workers N`` / ``--dask ADDRESS``.

    Parameters
    ----------
    workers : int
        1: in this process; N > 1: a pool of N processes; 0: one per CPU.
    dask : str, optional
        A scheduler address; takes precedence over ``workers``.

    Examples
    --------
    >>> make_executor(1).describe()
    '1 process'
    """
    if dask:
        return DaskExecutor(dask)
    if workers < 0:
        raise ParameterError(f"workers={workers} must be >= 0 (0: one per CPU)")
    if workers == 0:
        workers = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1)
        )
    if workers == 1:
        return InProcessExecutor()
    return ProcessPoolExecutor(workers)
