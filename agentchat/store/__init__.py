"""Persistence: agents and their message history in SQLite (WAL), safe against kill -9."""
