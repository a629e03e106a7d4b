"""``python -m apalu.bench``: time APALU against the built-in activations (see :mod:`apalu.bench`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
