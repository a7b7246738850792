"""The `lima` command: one entry point for serving and model preparation."""
