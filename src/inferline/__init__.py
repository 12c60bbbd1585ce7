"""inferline: a self-hosted AI inference platform, wire-compatible with the Telnyx AI API."""

from inferline.engines import openmp

openmp.configure()  # before any engine library loads libgomp

__version__ = "0.1.0"
