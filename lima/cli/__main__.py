"""`python -m lima.cli`: what `lima up` starts its children with."""

import sys

from lima.cli import main

sys.exit(main())
