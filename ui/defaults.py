"""Where the chat page listens unless told otherwise (Gradio's own default port), for `lima ui` and `lima up`."""

PAGE_PORT = 7860
