"""What the tests and the benchmarks share: a `lima serve` process to start, wait for and stop (live_server.py),
and the soak load (soak.py). Neither tests/ nor bench/ imports the other."""
