"""Domain logic, one service per API area. Services never import FastAPI."""
