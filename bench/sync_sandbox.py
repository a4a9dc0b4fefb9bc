"""Helper of ``sync_throughput.py``: a seeded sandbox in its own process (so its CPU does
not share a GIL with the code being measured). Prints its URL, serves until stdin closes.

    python bench/sync_sandbox.py --users 1000 --interviews 20 --latency 0.05 --api-key KEY
"""

from __future__ import annotations

import argparse
import sys

from django_biginterview.sandbox import Sandbox


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--interviews", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()

    sandbox = Sandbox(api_keys=[args.api_key])
    for n in range(args.users):
        partner_id = f"bench-{n}"
        sandbox.create_user(partner_id)
        for i in range(args.interviews):
            sandbox.start_interview(partner_id, title=f"Question set {i % 4}")
    sandbox.set_faults(latency=args.latency)
    sandbox.start()
    print(sandbox.url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    print(len(sandbox.api_calls()), flush=True)
    sandbox.stop()


if __name__ == "__main__":
    main()
