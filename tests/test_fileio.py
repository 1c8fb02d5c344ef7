"""Atomic writes: the old file survives a failed write, and no temporary file is left."""

import numpy as np
import pytest

from cratedig.fileio import atomic_path


def test_replaces_on_success_and_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "sub" / "index.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".npz"
        np.savez(tmp, a=np.arange(3))
    assert np.array_equal(np.load(target)["a"], np.arange(3))
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        np.savez(tmp, a=np.arange(5))
        raise RuntimeError("disk full")
    assert np.array_equal(np.load(target)["a"], np.arange(3))
    assert sorted(p.name for p in target.parent.iterdir()) == ["index.npz"]
