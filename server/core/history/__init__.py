"""Conversation history: the Redis store and its key names, the embedded Redis, stored items and responses."""
