"""`python -m modelrl ...`: the same as the `modelrl` command."""

import sys

from modelrl.cli import main

if __name__ == "__main__":
    sys.exit(main())
