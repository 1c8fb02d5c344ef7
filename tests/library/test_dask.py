"""The Dask path: a real LocalCluster with 2 worker processes builds the same library."""

from __future__ import annotations

import pytest

from cratedig.compute import ComputeError, DaskExecutor
from cratedig.library.db import open_library
from cratedig.library.ingest import export_slices, ingest

from .snapshot import assert_same_library, snapshot
from .tasks import square_or_die


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_builds_the_same_library_as_one_process(
    cluster, db_url, music, tmp_path, reference_library
):
    with DaskExecutor(cluster) as dask, open_library(db_url) as lib:
        assert dask.workers == 2
        report = ingest(lib, music, executor=dask, slices_dir=tmp_path / "slices")
        again = ingest(lib, music, executor=dask)
        sliced = export_slices(lib, tmp_path / "later", executor=dask)
    assert report.analysed == 6 and report.failed == [] and report.slice_errors == []
    assert report.executor.startswith("dask tcp://")
    assert again.unchanged == 6 and again.analysed == 0
    assert sliced.tracks == 6 and sliced.errors == []
    assert_same_library(reference_library, snapshot(db_url, music))


def test_dask_reports_task_errors_per_item(cluster):
    with DaskExecutor(cluster) as dask:
        out = dict(dask.imap_unordered(square_or_die, [1, 2, 7], context=5))
    assert out[1] == 6 and out[2] == 9 and isinstance(out[7], ValueError)


def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(ComputeError, match="cannot reach the Dask scheduler"):
        DaskExecutor("tcp://127.0.0.1:1", timeout=2)
