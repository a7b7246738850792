"""OpenAI-compatible chat server on vLLM's async engine."""
