"""`python -m maskwise doctor FILE`: the `maskwise` command, where the script is not on PATH."""

import sys

from .cli import main

sys.exit(main())
