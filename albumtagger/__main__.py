"""`python -m albumtagger`: the same entry point as the `albumtagger` command."""

import sys

from albumtagger.cli import main

if __name__ == "__main__":  # (a model process started by the app imports this module)
    sys.exit(main())
