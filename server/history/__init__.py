"""Conversation history: the Redis store (and the embedded Redis), stored items, prompt fitting, turns."""
