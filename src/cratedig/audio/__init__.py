"""Audio I/O: decoding any supported format, writing, stems."""

from cratedig.audio.decode import (
    ANALYSIS_SR,
    AUDIO_SUFFIXES,
    DecodedAudio,
    decode,
    probe,
)

__all__ = ["ANALYSIS_SR", "AUDIO_SUFFIXES", "DecodedAudio", "decode", "probe"]
