"""How a `lima prep` command refuses bad input: one line and status 2, as argparse does for bad flags."""

import logging
import sys

from pydantic import ValidationError

log = logging.getLogger(__name__)
# What a person's input can raise: bad values and files (DataError and pydantic's errors are ValueErrors), files
# that are missing or unreadable. Anything else is a bug, and keeps its traceback.
USER_ERRORS = (ValueError, OSError)


def one_line(exc: BaseException) -> str:
    """The error as one line: each of a config's invalid fields with its reason, or the message, whitespace folded."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, error['loc'])) or 'config'}: {error['msg']}" for error in exc.errors())
    return " ".join(str(exc).split()) or type(exc).__name__


def refuse(command: str, exc: BaseException) -> int:
    """A bad config or input file: one line on stderr and exit status 2 (the traceback only in debug logs)."""
    log.debug("lima prep %s refused its input", command, exc_info=exc)
    print(f"lima prep {command}: {one_line(exc)}", file=sys.stderr)
    return 2
