"""Rendering suggestions: beat-aligned stretch, pitch shift, loudness match, mixdown; mashup plans.

:mod:`cratedig.render.engine` turns a query segment and a candidate segment (arrays) into the
mix a DJ would hear; :mod:`cratedig.render.plan` chooses one partner per phrase of a whole song.
Both are pure: the CLI loads audio and writes files.
"""

from cratedig.render.engine import (
    RENDER_VERSION,
    PairRender,
    RenderCache,
    beat_time_map,
    cache_key,
    limit_true_peak,
    loudness_db,
    remove_dc,
    render_pair,
    stretch_shift,
)
from cratedig.render.plan import Cue, MashupPlan, plan_mashup

__all__ = [
    "RENDER_VERSION",
    "Cue",
    "MashupPlan",
    "PairRender",
    "RenderCache",
    "beat_time_map",
    "cache_key",
    "limit_true_peak",
    "loudness_db",
    "plan_mashup",
    "remove_dc",
    "render_pair",
    "stretch_shift",
]
