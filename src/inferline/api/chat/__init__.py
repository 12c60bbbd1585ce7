"""`POST /ai/chat/completions` and `POST /ai/openai/chat/completions`."""
