"""Structured logs, Prometheus metrics and the request context they share."""
