"""cratedig: find the pieces of songs that mix."""

__version__ = "0.1.0"

# Bumped whenever analysis output changes meaning; the library re-analyses only stale tracks.
ANALYSIS_VERSION = 2  # 2: beat-level chroma per segment
