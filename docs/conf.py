"""Sphinx configuration of the documentation site (``tox -e docs``).

The build needs no network: no intersphinx, no remote images, no link check. Warnings are
errors (``-W``) and every reference must resolve (``-n``), MyST's links to pages and
heading anchors included. Names of other packages (Django, requests, the standard
library) cannot be resolved without their inventories, so only they are exempt: a
reference to anything in ``django_biginterview`` must land.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.settings, and the package from a plain checkout

# autodoc imports the modules, which need Django configured (models, template tags).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()

from docutils import nodes  # noqa: E402
from docutils.parsers.rst import directives  # noqa: E402
from sphinx.application import Sphinx  # noqa: E402
from sphinx.util.docutils import SphinxDirective  # noqa: E402

import django_biginterview  # noqa: E402

project = "django-biginterview"
author = "django-biginterview contributors"
copyright = "django-biginterview contributors"
release = django_biginterview.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []

# MyST: `[text](page.md#a-heading)` and `[text](#a-heading)` resolve to headings down to
# level 3, and a link to a missing page or anchor is a warning (so an error here).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# Text as written: no curly quotes, and `--option` stays two hyphens.
smartquotes = False

html_theme = "furo"
html_title = f"django-biginterview {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Defaults as written in the source (`sleep=time.sleep`, not `<built-in function sleep>`).
autodoc_preserve_defaults = True
autodoc_default_options: dict[str, Any] = {}

nitpicky = True
# Other packages' names: without their (remote) inventories they cannot resolve. Our own
# names are not listed, so a broken reference to them still fails the build.
_EXTERNAL = (
    r"(django|rest_framework|requests|celery)\..+"
    r"|(datetime|decimal|collections\.abc|typing)\..+"
)
nitpick_ignore_regex = [(r"py:(class|exc|obj|data|func|meth|mod)", _EXTERNAL)]


#: Options Django gives every management command (`--skip-checks` only some: it stays).
COMMON_OPTIONS = (
    "--version",
    "--verbosity",
    "--settings",
    "--pythonpath",
    "--traceback",
    "--no-color",
    "--force-color",
)


class ManagementCommandHelp(SphinxDirective):
    """``{command-help} biginterview_sync``: the command's ``--help``, rendered at build
    time from its argument parser, so the page cannot drift from the options."""

    required_arguments = 1
    option_spec = {"width": directives.positive_int}

    def run(self) -> list[nodes.Node]:
        from django.core.management import load_command_class

        name = self.arguments[0]
        command = load_command_class("django_biginterview", name)
        # Django's options common to every command are left out (the page says so).
        command.suppressed_base_arguments = set(COMMON_OPTIONS)
        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = str(self.options.get("width", 88))
        try:
            text = command.create_parser("manage.py", name).format_help()
        finally:
            if previous is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = previous
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("command-help", ManagementCommandHelp)
    return {"parallel_read_safe": True}
