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


# -- outputs named by the user (-o): never replace what is not a regular file ---------------

import os  # noqa: E402
import stat  # noqa: E402
import threading  # noqa: E402

from cratedig.errors import OutputError  # noqa: E402
from cratedig.fileio import check_output, output_path  # noqa: E402


def test_atomic_and_output_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "index.npz") as tmp:
            tmp.write_bytes(b"x")
        with output_path(tmp_path / "mix.wav") as tmp:
            tmp.write_bytes(b"y")
        os.umask(0o077)
        with output_path(tmp_path / "private.wav") as tmp:
            tmp.write_bytes(b"z")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "index.npz") == 0o644
    assert mode(tmp_path / "mix.wav") == 0o644
    assert mode(tmp_path / "private.wav") == 0o600
    # Replacing a file keeps its mode.
    os.chmod(tmp_path / "mix.wav", 0o640)
    with output_path(tmp_path / "mix.wav") as tmp:
        tmp.write_bytes(b"again")
    assert mode(tmp_path / "mix.wav") == 0o640 and (tmp_path / "mix.wav").read_bytes() == b"again"


def test_a_symlink_is_written_through_not_replaced(tmp_path):
    target = tmp_path / "real" / "song.wav"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    with output_path(link) as tmp:
        tmp.write_bytes(b"new audio")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new audio"
    # A dangling link names the file to create.
    dangling = tmp_path / "dangling.wav"
    dangling.symlink_to(tmp_path / "real" / "created.wav")
    with output_path(dangling) as tmp:
        tmp.write_bytes(b"made")
    assert dangling.is_symlink() and (tmp_path / "real" / "created.wav").read_bytes() == b"made"


def test_a_fifo_is_streamed_into_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "out.wav"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    payload = os.urandom(3 << 20)  # several chunks
    with output_path(fifo) as tmp:
        tmp.write_bytes(payload)
    reader.join(timeout=30)
    assert got == [payload]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_a_device_is_written_in_place(tmp_path):
    assert check_output("/dev/null").kind == "stream"
    with output_path("/dev/null") as tmp:
        tmp.write_bytes(b"discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    # /dev/full: every write fails with ENOSPC, as on a full disk: one line, no traceback.
    with pytest.raises(OutputError, match="no space left on device"), output_path("/dev/full") as t:
        t.write_bytes(b"x" * 1000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_dash_is_standard_output(capfdbinary):
    with output_path("-", suffix=".wav") as tmp:
        tmp.write_bytes(b"RIFF....")
    assert capfdbinary.readouterr().out == b"RIFF...."


def test_directories_sockets_and_missing_folders_are_refused_up_front(tmp_path):
    import socket

    with pytest.raises(OutputError, match="is a directory"):
        check_output(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        check_output(tmp_path / "no" / "such" / "x.wav")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_output(tmp_path / "afile" / "x.wav")
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(OutputError, match="neither a file"):
            check_output(sock_path)
    assert sock_path.exists() and stat.S_ISSOCK(sock_path.lstat().st_mode)


def test_a_file_in_the_way_of_the_folder_is_one_line(tmp_path):
    (tmp_path / "lib.db.d").write_text("not a folder")
    with pytest.raises(OutputError, match="a file is in the way"):
        with atomic_path(tmp_path / "lib.db.d" / "segments.index.npz"):
            pass


def test_disk_full_inside_the_block_is_one_line(tmp_path):
    import errno

    with pytest.raises(OutputError, match="no space left") as info:
        with atomic_path(tmp_path / "index.npz"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(info.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == []


def test_long_ogg_vorbis_encodes_without_crashing_the_process(tmp_path):
    """Two minutes of stereo at 44.1 kHz in one libsndfile call crash libvorbis (a segmentation
    fault, not an exception: an `ingest --slices ogg` of a long phrase, or the demo's OGG song,
    would die); written a block at a time it encodes, to a file or to memory."""
    import io

    import soundfile as sf

    from cratedig.fileio import write_sound

    sr = 44100
    y = (np.random.default_rng(0).standard_normal((sr * 120, 2)) * 0.1).astype(np.float32)
    write_sound(tmp_path / "long.ogg", y, sr, format="OGG", subtype="VORBIS")
    buf = io.BytesIO()
    write_sound(buf, y[:, 0], sr, format="OGG")
    assert sf.info(tmp_path / "long.ogg").frames == len(y)
    back, rate = sf.read(io.BytesIO(buf.getvalue()))
    assert rate == sr and back.shape == (len(y),)
