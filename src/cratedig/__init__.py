"""cratedig: find the pieces of songs that mix."""

__version__ = "0.1.0"

# Bumped whenever analysis output changes meaning; the library re-analyses only stale tracks.
ANALYSIS_VERSION = 4  # 2: beat-level chroma per segment; 3: slow backbeat songs at their tempo; 4: pulse families (3:4 errors), learned bar-phase cues, modal keys, confidences
