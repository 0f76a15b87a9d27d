"""`python -m albumtagger`: the same entry point as the `albumtagger` command."""

import sys

from albumtagger.cli import main

sys.exit(main())
