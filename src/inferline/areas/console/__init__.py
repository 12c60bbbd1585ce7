"""The web console at `/console`: hand-written ES modules calling the `/v2` API with the user's key."""
