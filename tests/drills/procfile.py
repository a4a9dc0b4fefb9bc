"""The example project's Procfile, read and expanded the way honcho and foreman run it:
the one copy in ``bench/procfile.py``, which the benchmarks run too."""

from bench.procfile import EXAMPLE, PROCFILE, procfile_command, procfile_lines

__all__ = ["EXAMPLE", "PROCFILE", "procfile_command", "procfile_lines"]
