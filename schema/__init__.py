"""ModelPort schema."""
