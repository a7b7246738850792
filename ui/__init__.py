"""Gradio chat UI on top of the server's public OpenAI API (issue #4: not built yet)."""
