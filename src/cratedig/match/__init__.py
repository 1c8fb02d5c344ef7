"""Matching: which segments of other songs mix with a part of this one.

- :mod:`cratedig.match.batch`: :class:`SegmentBatch`, segments' features as arrays;
- :mod:`cratedig.match.scoring`: mashability terms and the combined score, vectorised;
- :mod:`cratedig.match.index`: candidate retrieval (FAISS, with a numpy reference).
"""

from cratedig.match.batch import SegmentBatch
from cratedig.match.scoring import (
    DEFAULT_WEIGHTS,
    TERMS,
    MatchScores,
    candidate_records,
    explain,
    score_candidates,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "TERMS",
    "MatchScores",
    "SegmentBatch",
    "candidate_records",
    "explain",
    "score_candidates",
]
