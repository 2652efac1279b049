"""ModelPort harvesters."""
