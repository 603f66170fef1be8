"""`python -m autopeft` runs the command line."""

import sys

from autopeft.cli import main

sys.exit(main())
