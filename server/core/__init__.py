"""What the server does, without HTTP: the engine, generation, the conversation store, prompts and turns, keys,
limits, settings and failures in domain terms. Imports neither FastAPI nor server.api (import-linter checks)."""
