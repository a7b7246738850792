"""The vLLM engine: its arguments, the engine in process, admission, generation and SSE streaming."""
