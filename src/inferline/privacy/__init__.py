"""Personal data: redaction of transcripts and messages, and the per-tenant settings that turn it on.

Shared by the audio and conversations areas (and the admin routes), so neither area imports the other.
"""
