"""The chat page (Gradio) and its logic, on top of the server's public OpenAI-compatible API only."""
