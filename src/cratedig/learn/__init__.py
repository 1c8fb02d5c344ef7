"""Learning from the library: segment clusters (and, later, the learned ranker)."""
