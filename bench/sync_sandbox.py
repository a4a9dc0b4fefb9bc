"""Helper of the benches: a seeded sandbox in its own process (so its CPU does not share
a GIL with the code being measured). Prints its URL, then answers commands on stdin
until stdin closes:

- ``calls``: prints the arrival times (``time.time()``) of the API calls answered since
  the last ``calls`` or ``reset``, as one JSON list, and forgets them;
- ``reset``: forgets the calls answered so far.

    python bench/sync_sandbox.py --users 200 --interviews 20 --latency 0.05 --api-key KEY
                                 [--notifications PATH]

Users are ``bench-0`` ... ``bench-{users-1}``, each with the default tracks and
``--interviews`` interviews. ``--notifications`` writes the ``interview.created``
notifications the seeding generated to PATH, one JSON body a line, before the URL is
printed (the webhook bench stores them as deliveries).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from django_biginterview.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent


class SandboxProcess:
    """This helper run from a bench: ``SandboxProcess(users=..., ...)`` starts it and waits
    for its URL; :meth:`calls` and :meth:`reset` talk to it; :meth:`stop` ends it."""

    def __init__(
        self,
        *,
        users: int,
        interviews: int,
        latency: float,
        api_key: str,
        notifications: Path | None = None,
    ) -> None:
        argv = [sys.executable, __file__, "--users", str(users), "--interviews", str(interviews),
                "--latency", str(latency), "--api-key", api_key]  # fmt: skip
        if notifications is not None:
            argv += ["--notifications", str(notifications)]
        self.process = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        self.url = self._read()
        if not self.url.startswith("http"):
            self.stop()
            raise SystemExit(f"the sandbox did not start (got {self.url!r})")

    def _read(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def _ask(self, command: str) -> list[float]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return [float(t) for t in json.loads(self._read())]

    def calls(self) -> list[float]:
        """Arrival times of the API calls answered since the last ``calls``/``reset``."""
        return self._ask("calls")

    def reset(self) -> None:
        self._ask("reset")

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--interviews", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--notifications", help="write the seeding's notifications here")
    args = parser.parse_args()

    sandbox = Sandbox(api_keys=[args.api_key])
    for n in range(args.users):
        partner_id = f"bench-{n}"
        sandbox.create_user(partner_id)
        for i in range(args.interviews):
            sandbox.start_interview(partner_id, title=f"Question set {i % 4}")
    if args.notifications:
        with open(args.notifications, "w") as out:
            for payload in sandbox.notifications:
                out.write(json.dumps(payload) + "\n")
    sandbox.set_faults(latency=args.latency)
    sandbox.start()
    print(sandbox.url, flush=True)
    for line in sys.stdin:  # until the parent closes our stdin
        command = line.strip()
        if command in ("calls", "reset"):
            times = [call.time for call in sandbox.api_calls()]
            sandbox.reset_calls()
            print(json.dumps(times if command == "calls" else []), flush=True)
    sandbox.stop()


if __name__ == "__main__":
    main()
