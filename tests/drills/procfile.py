"""The example project's Procfile, read and expanded the way honcho and foreman run it."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "example_project"
PROCFILE = EXAMPLE / "Procfile"

# ``$NAME``, ``${NAME}`` and ``${NAME:-default}``: what the Procfile's lines use of sh.
_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::-(?P<default>[^}]*))?\}|\$(?P<bare>\w+)")


def procfile_lines(path: Path = PROCFILE) -> dict[str, str]:
    """``{process type: command}`` of a Procfile (``name: command`` lines; ``#`` comments)."""
    lines: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        lines[name.strip()] = command.strip()
    return lines


def procfile_command(name: str, env: Mapping[str, str], path: Path = PROCFILE) -> list[str]:
    """The argv of one process type, split like sh splits it, variables taken from ``env``
    (an unset or empty ``${NAME:-default}`` gives the default, as in sh)."""

    def expand(match: re.Match[str]) -> str:
        variable = match["braced"] or match["bare"]
        return env.get(variable) or match["default"] or ""

    return [_VARIABLE.sub(expand, word) for word in shlex.split(procfile_lines(path)[name])]
