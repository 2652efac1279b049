"""ModelPort api."""
