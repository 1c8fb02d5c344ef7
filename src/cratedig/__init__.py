"""cratedig: find the pieces of songs that mix."""

__version__ = "0.1.0"

# Bumped whenever analysis output changes meaning; the library re-analyses only stale tracks.
ANALYSIS_VERSION = 27  # 2: beat-level chroma per segment; 3: slow backbeat songs at their tempo; 4: pulse families (3:4 errors), learned bar-phase cues, modal keys, confidences; 11: bass notes named from the interpolated peak frequency, not the bin centre; 12: the first bar's own key scores are a prior on the track key, and the key confidence is the lesser of agreement and clarity, halved when the opening says another key; 13: in a bass-heavy mix whose onsets tie between the beat and the off-beat, the kick and hats bands place the beat; 14: a learned key network (keynet) adds its log-probabilities to the track key's scores; 15: (a tempo-level ranker, reverted); 16: a slower beat level is also read where the kick stays off its in-between positions; 17: the bar lines' confidence is a fitted logistic model of the phase and meter margins and the tempo confidence; 18: the meter's confidence maps its margin by 2.0, not 0.5 (it saturated); 19: (a canonical phrase grid, reverted); 20: the backbeat rule reads the snare at the kick's beats and wants the kick or the snare to alternate at the slower level, so a kick on 1 and 3 (or four on the floor) with the snare on 2 and 4 is no longer a half-tempo backbeat (a rock beat at 120 was read at 60, house at 124 at 62); 21: no slower beat level whose beats sit on a snare pulse with the kick between them (drum and bass at 174 was read at 87, UK garage at 130 at 65, a breakbeat at 128 at 64); 22: the octave walk also weighs half the tatum period (a 140 BPM song whose every other beat is much the stronger was read at 70); 23, 24: (reverted); 25: a learned beat network (beatnet) moves the beat where its activation folds 1.5 times stronger a quarter beat or more from the onsets' fold peak (off-beat stabs, bass and hats over the kick); 26: the beat network checks the tempo octave: twice as fast where it fires between the beats as surely as on them, half as fast where every other beat stays quiet; 27: no break before the first peak: a thin section there is the intro going on (until a verse comes), the one right before the peak its build-up; and a section boundary moves a bar before its grid line only where that bar's opening already plays the new section (not onto the fill or riser that leads into it)
# 5: sections from several cues on a 4-bar grid with a confidence each, phrases laid inside
# sections (so segment boundaries move), labels intro/build/drop/break/verse/chorus/outro
# 6: the section grid's phase (0..3 bars) from novelty peaks (sections starting on bar 2, 6...);
# a boundary needs combined novelty 3.0 (was 1.5) unless it stands out from its neighbours
# 7: boundary novelty from instrumentation cues (bands, drums, timbre, flatness, texture; no
# chroma), floor 4.0, and a boundary moves one bar off its grid line to a clearly higher peak
# 8: confidences that flag errors: the key's is the share of phrases whose own key is the
# track's, the bar lines' at most the tempo's and meter's; the harmonic flux picks the tatum's
# family when the onsets have none (drumless music)
# 9: bar-line cue weights refitted with a penalty chosen by cross-validation grouped by piece
# 10: the beat grid of music whose onsets mark no beat phase (notes that swell in) is fitted on
# a level-invariant note flux
