"""Operating inferline: scopes, limits, usage metering, Prometheus metrics, request logs."""
