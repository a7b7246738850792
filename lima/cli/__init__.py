"""`lima up` runs server and chat page together; `lima serve` the server, `lima ui` the page; `lima prep ...`
prepares models. `lima --help` lists everything. One module per command group, each a function of its argv."""

import logging
import os
import sys
from collections.abc import Callable, Sequence

# Nothing in this project may reach a model hub or phone home; users can still override these.
_OFFLINE = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
for _var, _value in _OFFLINE.items():
    os.environ.setdefault(_var, _value)

from lima.cli.history import history  # noqa: E402  (after the environment above)
from lima.cli.prep import prep  # noqa: E402
from lima.cli.serve import serve  # noqa: E402
from lima.cli.ui import ui  # noqa: E402
from lima.cli.up import up  # noqa: E402

COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"serve": serve, "prep": prep, "ui": ui, "up": up,
                                                       "history": history}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] not in COMMANDS:
        print("usage: lima {up,serve,ui,prep,history} ...\n  lima up --help\n  lima serve --help\n"
              "  lima ui --help\n  lima prep --help\n  lima history --help", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return COMMANDS[argv[0]](argv[1:])
