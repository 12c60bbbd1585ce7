"""The HTTP layer: per-area routes and wire models, plus the shared plumbing in this package."""
