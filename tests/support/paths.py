"""Where things are: the repository root and the example project."""

from __future__ import annotations

from pathlib import Path

#: The repository (the working directory of the subprocesses the tests start).
ROOT = Path(__file__).resolve().parent.parent.parent
#: The example portal, whose Procfile the drills and the benches run.
EXAMPLE = ROOT / "example_project"
