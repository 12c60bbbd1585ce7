"""inferline: a self-hosted AI inference platform, wire-compatible with the Telnyx AI API."""

__version__ = "0.1.0"
