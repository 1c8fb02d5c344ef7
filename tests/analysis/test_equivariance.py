"""Equivariance on real audio: Rubber Band shifts move the key by k, stretches the tempo by r."""

import numpy as np
import pedalboard
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cratedig.analysis.pipeline import analyze_signal
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


@pytest.fixture(scope="module")
def base_song():
    return synthesize_song(tempo=118.0, key=Key.parse("D minor"), bars=16, seed=11, sr=SR)


@pytest.fixture(scope="module")
def base_analysis(base_song):
    return analyze_signal(base_song.audio, sr=SR)


def rubberband(y, *, semitones=0.0, speed=1.0):
    out = pedalboard.time_stretch(
        y[None, :].astype(np.float32), SR, stretch_factor=speed, pitch_shift_in_semitones=semitones
    )
    return out[0]


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(k=st.integers(-5, 6).filter(lambda k: k != 0))
def test_pitch_shift_moves_key_by_k(base_song, base_analysis, k):
    shifted = analyze_signal(rubberband(base_song.audio, semitones=k), sr=SR)
    assert shifted.key == base_analysis.key.transpose(k)
    # The tempo does not move under a pure pitch shift.
    assert shifted.tempo == pytest.approx(base_analysis.tempo, rel=0.015)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(r=st.sampled_from([0.88, 0.94, 0.97, 1.04, 1.08, 1.12]))
def test_time_stretch_moves_tempo_by_r(base_song, base_analysis, r):
    stretched = analyze_signal(rubberband(base_song.audio, speed=r), sr=SR)
    assert stretched.tempo / base_analysis.tempo == pytest.approx(r, rel=0.015)
    assert stretched.key == base_analysis.key
