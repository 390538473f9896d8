"""Sphinx configuration: the Markdown guides (MyST) and the API reference."""

import sysvipc

project = "sysvipc"
author = "The sysvipc developers"
copyright = "2026, The sysvipc developers"
release = version = sysvipc.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Names the docstrings mention that Sphinx cannot resolve offline.
nitpicky = False
suppress_warnings = ["myst.xref_missing"]
html_theme = "alabaster"
html_title = "sysvipc"
