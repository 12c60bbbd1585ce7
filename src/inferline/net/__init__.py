"""Outgoing HTTP to URLs that callers choose: the SSRF policy (`policy`) and the one client (`safe_http`)."""
