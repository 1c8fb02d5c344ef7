"""Learning from the library: segment clusters, the training gate, drift (and, later, the
learned ranker, which trains through :func:`cratedig.learn.gate.gate_tracks` and
:func:`cratedig.learn.gate.gate_pairs` as the clusters do)."""
