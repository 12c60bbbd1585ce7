"""Storage backends: the relational database, the object store and the vector index."""
