"""`/ai/openai/embeddings`: OpenAI-compatible text embeddings."""
