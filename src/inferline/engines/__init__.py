"""Model runtimes behind small Protocols, one module per capability and implementation."""
