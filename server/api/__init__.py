"""The HTTP layer: FastAPI routers, one package per API, over server.core (which knows nothing of HTTP)."""
