"""Fixtures: filled in by the subsystem that owns them."""
