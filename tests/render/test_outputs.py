"""Where renders go: -o checked before any work, never replacing a non-regular file; a changed
source refused; an unwritable cache harmless; a mashup streamed to its file."""

from __future__ import annotations

import io
import os
import shutil
import stat
import threading

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from cratedig.cli import app
from cratedig.errors import OutputError
from cratedig.library.db import open_library
from cratedig.match.store import sync_index
from cratedig.render.service import AudioChanged, render_mashup

from .test_service import SR, _segment, library, songs  # noqa: F401 (fixtures)

runner = CliRunner()


def _render(library, *extra):  # noqa: F811
    q, c = _segment(library, "query"), _segment(library, "cand")
    return runner.invoke(app, ["render", q.id, c.id, "--db", library["url"], *extra])


def _fail_if_called(*args, **kwargs):
    raise AssertionError("work started before the output was checked")


def test_render_to_a_directory_fails_before_any_work(library, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr("cratedig.render.service.render_segments", _fail_if_called)
    r = _render(library, "-o", str(tmp_path))
    assert r.exit_code == 1 and isinstance(r.exception, OutputError)
    assert "is a directory" in str(r.exception)


def test_mashup_output_and_plan_are_checked_before_any_work(library, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr("cratedig.workflows.resolve_query", _fail_if_called)
    tid = library["ids"]["query"]
    r = runner.invoke(app, ["mashup", tid, "-o", str(tmp_path), "--db", library["url"]])
    assert isinstance(r.exception, OutputError) and "is a directory" in str(r.exception)
    out = tmp_path / "mix.wav"
    r = runner.invoke(
        app, ["mashup", tid, "-o", str(out), "--plan", str(tmp_path), "--db", library["url"]]
    )
    assert isinstance(r.exception, OutputError) and "is a directory" in str(r.exception)
    assert not out.exists()


def test_render_writes_through_a_symlink(library, tmp_path):  # noqa: F811
    target = tmp_path / "real.wav"
    target.write_bytes(b"old")
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    r = _render(library, "-o", str(link))
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and sf.info(str(target)).frames > SR


def test_render_streams_into_a_fifo(library, tmp_path):  # noqa: F811
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = _render(library, "-o", str(fifo))
    reader.join(timeout=60)
    assert r.exit_code == 0, r.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    y, sr = sf.read(io.BytesIO(got[0]))
    assert sr == 44100 and len(y) > sr


def test_render_to_a_full_device_is_one_line(library):  # noqa: F811
    r = _render(library, "-o", "/dev/full", "--format", "wav")
    assert isinstance(r.exception, OutputError)
    assert "no space left on device" in str(r.exception)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_render_works_when_the_cache_cannot_be_written(library, tmp_path, caplog):  # noqa: F811
    db = tmp_path / "copy.db"
    shutil.copy(library["url"].removeprefix("sqlite:///"), db)
    (tmp_path / "copy.db.d").mkdir()
    (tmp_path / "copy.db.d" / "renders").write_text("a file where the cache folder goes")
    r = _render({**library, "url": f"sqlite:///{db}"}, "-o", str(tmp_path / "x.wav"))
    assert r.exit_code == 0, r.output
    assert sf.info(str(tmp_path / "x.wav")).frames > SR
    assert "render cache" in caplog.text


def test_render_refuses_a_file_whose_audio_changed(songs, tmp_path):  # noqa: F811
    from cratedig.library.ingest import ingest

    music = tmp_path / "music"
    music.mkdir()
    for name, song in songs.items():
        sf.write(music / f"{name}.wav", song.audio, SR)
    url = f"sqlite:///{tmp_path / 'lib.db'}"
    with open_library(url) as lib:
        ingest(lib, music)
        from cratedig.library import repository as repo

        with lib.reader() as s:
            files = repo.known_files(s)
            ids = {n: files[str(music / f"{n}.wav")].track_id for n in songs}
            analyses = {n: repo.load_analysis(s, t) for n, t in ids.items()}
    # Another song, same name, before any new ingest.
    sf.write(music / "cand.wav", songs["query"].audio * 0.5, SR)
    lib_info = {"url": url, "analyses": analyses}
    r = _render(lib_info, "-o", str(tmp_path / "x.wav"), "--no-cache")
    assert isinstance(r.exception, AudioChanged)
    assert "changed since it was analysed" in str(r.exception)
    assert not (tmp_path / "x.wav").exists()


def test_mashup_streamed_to_a_file_equals_the_mix_in_memory(library, tmp_path):  # noqa: F811
    with open_library(library["url"]) as lib:
        index, _ = sync_index(lib)
        a = library["analyses"]["query"]
        with_file = render_mashup(lib, index, a, output=tmp_path / "mix.wav")
        in_memory = render_mashup(lib, index, a)
    assert with_file.audio is None and in_memory.audio is not None
    y, sr = sf.read(tmp_path / "mix.wav", always_2d=True, dtype="float32")
    assert sr == in_memory.sr and y.shape[0] == with_file.frames == in_memory.audio.shape[1]
    assert np.allclose(y.T, in_memory.audio, atol=1e-6)
    assert np.abs(y).max() < 10 ** (-1 / 20)


def test_an_unchanged_file_is_trusted_by_size_and_mtime(library, tmp_path, monkeypatch):  # noqa: F811
    def no_hashing(*args, **kwargs):
        raise AssertionError("an unchanged file was hashed again")

    monkeypatch.setattr("cratedig.render.service.content_hash", no_hashing)
    r = _render(library, "-o", str(tmp_path / "x.wav"), "--no-cache")
    assert r.exit_code == 0, r.output
