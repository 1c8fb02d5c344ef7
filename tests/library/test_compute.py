"""Executors: same results everywhere; a crashing worker costs only the item that crashed it."""

from __future__ import annotations

import pytest

from cratedig.compute import (
    InProcessExecutor,
    ProcessPoolExecutor,
    WorkerCrashed,
    make_executor,
)
from cratedig.errors import ParameterError

from .tasks import square_or_die


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


def test_a_pool_isolates_the_item_that_kills_a_worker():
    items = list(range(20))
    with ProcessPoolExecutor(2, max_in_flight=4) as pool:
        out = dict(pool.imap_unordered(square_or_die, items, context=1))
    assert sorted(out) == items
    assert isinstance(out[13], WorkerCrashed)
    assert isinstance(out[7], ValueError)
    assert all(out[i] == i * i + 1 for i in items if i not in (7, 13))
