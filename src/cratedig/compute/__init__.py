"""Executors: in-process, local process pool, Dask distributed (see :mod:`.executors`)."""

from cratedig.compute.executors import (
    ComputeError,
    DaskExecutor,
    Executor,
    InProcessExecutor,
    ProcessPoolExecutor,
    WorkerCrashed,
    make_executor,
)

__all__ = [
    "ComputeError",
    "DaskExecutor",
    "Executor",
    "InProcessExecutor",
    "ProcessPoolExecutor",
    "WorkerCrashed",
    "make_executor",
]
