"""``python -m descend`` runs the command line."""

import sys

from descend.cli import main

sys.exit(main())
