"""ModelPort index."""
