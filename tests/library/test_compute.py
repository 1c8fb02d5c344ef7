"""Executors: same results everywhere; a crashing worker costs only the item that crashed it."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

import pytest

from cratedig.compute import (
    InProcessExecutor,
    ProcessPoolExecutor,
    WorkerCrashed,
    make_executor,
)
from cratedig.errors import ParameterError

from .tasks import math_threads, square_or_die


def test_make_executor_picks_the_kind():
    assert isinstance(make_executor(1), InProcessExecutor)
    pool = make_executor(2)
    assert isinstance(pool, ProcessPoolExecutor) and pool.describe() == "2 processes"
    with pytest.raises(ParameterError):
        make_executor(-1)


def test_in_process_reports_exceptions_with_their_item():
    items = [1, 2, 7, 3]
    out = dict(InProcessExecutor().imap_unordered(square_or_die, items, context=10))
    assert out[1] == 11 and out[3] == 19
    assert isinstance(out[7], ValueError)


class _RefusingPool(ProcessPoolExecutor):
    """A pool whose ``submit`` finds it broken on the first two calls: what a submit sees when a
    worker has died since the last results came in (a race a busy machine hits)."""

    refusals = 0

    def _start(self, context):
        real = super()._start(context)
        outer = self

        class Proxy:
            def submit(self, *args, **kwargs):
                if outer.refusals < 2:
                    outer.refusals += 1
                    raise BrokenProcessPool("a child process terminated abruptly")
                return real.submit(*args, **kwargs)

            def shutdown(self, *args, **kwargs):
                return real.shutdown(*args, **kwargs)

        return Proxy()


def test_a_submit_that_finds_the_pool_broken_loses_no_item_and_blames_none():
    items = list(range(10))
    with _RefusingPool(2, max_in_flight=4) as pool:
        out = dict(pool.imap_unordered(square_or_die, items, context=1))
    assert pool.refusals == 2
    assert sorted(out) == items
    assert isinstance(out[7], ValueError)
    assert all(out[i] == i * i + 1 for i in items if i != 7)


def test_a_pool_isolates_the_item_that_kills_a_worker():
    items = list(range(20))
    with ProcessPoolExecutor(2, max_in_flight=4) as pool:
        out = dict(pool.imap_unordered(square_or_die, items, context=1))
    assert sorted(out) == items
    assert isinstance(out[13], WorkerCrashed)
    assert isinstance(out[7], ValueError)
    assert all(out[i] == i * i + 1 for i in items if i not in (7, 13))


def test_each_worker_process_runs_its_math_on_one_thread(monkeypatch):
    """N workers on N cores must not run N x N BLAS threads (they ran slower than one)."""
    from cratedig.compute.executors import THREAD_VARIABLES

    for v in THREAD_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    with ProcessPoolExecutor(2) as pool:
        out = dict(pool.imap_unordered(math_threads, [0, 1]))
    assert out == {0: 1, 1: 1}
