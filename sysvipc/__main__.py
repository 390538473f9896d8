"""``python -m sysvipc``: the same as the ``sysvipc`` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
