"""`/ai/embeddings*`: bucket embedding tasks, embedded buckets, similarity search and URL crawl."""
