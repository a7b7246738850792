"""How a `lima prep` command refuses bad input: one line and status 2, as argparse does for bad flags."""

import sys


def refuse(command: str, exc: Exception) -> int:
    """A bad config or input file: one line on stderr and exit status 2, as argparse does for bad flags."""
    print(f"lima prep {command}: {exc}", file=sys.stderr)
    return 2
