"""`python -m ferkit.cli ...`, the same as the `ferkit` command."""

import sys

from ferkit.cli import main

sys.exit(main())
