"""Calciphylaxis clinical decision support: a CDS Hooks 2.0 service over FHIR R4."""

__version__ = "0.1.0"
