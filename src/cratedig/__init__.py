"""cratedig: find the pieces of songs that mix."""

__version__ = "0.1.0"

# Bumped whenever analysis output changes meaning; the library re-analyses only stale tracks.
ANALYSIS_VERSION = 3  # 2: beat-level chroma per segment; 3: slow backbeat songs at their tempo
