"""Build the C core, sysvipc._sysvipc (metadata lives in pyproject.toml)."""

import sys

from setuptools import Extension, setup

if not sys.platform.startswith("linux"):
    raise SystemExit("sysvipc supports Linux only (System V IPC as Linux implements it)")

extra_compile_args = [
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
    # A missing declaration (semtimedop without _GNU_SOURCE, timer_create)
    # must fail the build, never degrade it silently.
    "-Werror=implicit-function-declaration",
    "-Werror=incompatible-pointer-types",
    "-Werror=int-conversion",
]

setup(
    ext_modules=[
        Extension(
            "sysvipc._sysvipc",
            sources=["src/_sysvipc.c"],
            extra_compile_args=extra_compile_args,
            libraries=["rt"],  # timer_create on glibc < 2.34
        )
    ],
)
