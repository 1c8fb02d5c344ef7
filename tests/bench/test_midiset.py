"""The second real set's source reader and truth rule (``bench/midiset.py``): MIDI lumps out of
a Doom WAD, and the grid-share rule that drops files whose notes ignore their own MIDI grid
(MUS conversions keep a fixed 140 Hz clock)."""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import pretty_midi
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import midiset  # noqa: E402


def _midi(onsets_s: list[float], *, bpm: float, ppq: int) -> bytes:
    pm = pretty_midi.PrettyMIDI(resolution=ppq, initial_tempo=bpm)
    inst = pretty_midi.Instrument(program=0)
    for t in onsets_s:
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=60, start=t, end=t + 0.1))
    pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def _wad(lumps: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(b for _, b in lumps)
    directory, pos = b"", 12
    for name, b in lumps:
        directory += struct.pack("<ii8s", pos, len(b), name.encode())
        pos += len(b)
    return struct.pack("<4sii", b"IWAD", len(lumps), 12 + len(body)) + body + directory


def test_wad_music_reads_only_midi_music_lumps(tmp_path):
    song = _midi([0.0, 0.5, 1.0], bpm=120, ppq=96)
    wad = tmp_path / "x.wad"
    wad.write_bytes(_wad([("D_E1M1", song), ("D_OLD", b"MUS\x1a" + bytes(20)), ("MAP01", song)]))
    assert midiset.wad_music(wad) == [("D_E1M1", song)]
    (tmp_path / "bad.wad").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(ValueError, match="not a WAD"):
        midiset.wad_music(tmp_path / "bad.wad")


def test_grid_share_tells_a_real_grid_from_a_container_clock():
    """Sixteenths at 120 BPM sit on the grid; the same music stored at 95 BPM in 89 ticks a
    quarter (a MUS conversion) does not."""
    sixteenths = [i * 0.125 for i in range(64)]
    on = pretty_midi.PrettyMIDI(io.BytesIO(_midi(sixteenths, bpm=120, ppq=96)))
    off = pretty_midi.PrettyMIDI(io.BytesIO(_midi(sixteenths, bpm=95, ppq=89)))
    assert midiset.grid_share(on, 60.0) == pytest.approx(1.0)
    assert midiset.grid_share(off, 60.0) < midiset.GRID_SHARE_MIN
