"""``python -m apalu`` and the ``apalu`` console script (see :mod:`apalu.cli`)."""

import sys

from .sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
