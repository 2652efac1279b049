"""Ontology, SHACL shapes, JSON-LD context and the compatibility knowledge base (data only)."""
