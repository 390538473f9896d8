"""The message for ``import sysvipc`` when its C extension cannot be loaded.

The usual cause is importing the package from a source checkout (the
current directory, or ``PYTHONPATH``) that has no built extension, for
example after ``pip install .``: Python finds the ``sysvipc`` directory of
the checkout before the installed package.  Like numpy, say so and say
what to do, instead of the interpreter's "partially initialized module".
"""

from __future__ import annotations

import os
import sys


def explain(exc: BaseException) -> str:
    package = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(package)
    in_checkout = os.path.exists(os.path.join(root, "src", "_sysvipc.c")) and os.path.exists(
        os.path.join(root, "setup.py")
    )
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if in_checkout:
        return (
            "sysvipc's C extension (sysvipc._sysvipc) is not built in this source "
            f"checkout: {root}\n\n"
            f"Python imported sysvipc from the checkout, which has no C extension built "
            f"for this Python ({sys.executable}, {version}).  Either:\n"
            "  - use the installed sysvipc: run Python from another directory "
            "(python finds the checkout's 'sysvipc' directory first when it is the "
            "current directory or on PYTHONPATH); or\n"
            f"  - build the extension in the checkout: cd {root} && "
            f"{os.path.basename(sys.executable)} -m pip install -e .\n"
            "    (needs a C compiler and the Python headers)."
        )
    return (
        f"cannot import sysvipc's C extension (sysvipc._sysvipc) from {package}: {exc}\n\n"
        "The installation looks incomplete or built for another Python "
        f"(this is {version} at {sys.executable}).  Reinstall it for this "
        "interpreter: python -m pip install --force-reinstall sysvipc.  sysvipc "
        "runs on Linux only."
    )
