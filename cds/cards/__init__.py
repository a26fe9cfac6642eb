"""Rendering card intents and the differential into CDS Hooks cards."""
