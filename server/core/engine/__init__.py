"""The vLLM engine: its arguments, the engine in process, admission (back-pressure), generation, the loop guard
and function calling."""
