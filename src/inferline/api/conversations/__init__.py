"""Conversations, messages, insight templates and groups, insight runs, and the webhook public key."""
