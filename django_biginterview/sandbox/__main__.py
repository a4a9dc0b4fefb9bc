"""``python -m django_biginterview.sandbox --port 8765 --api-key KEY``: see ``cli.main``."""

from .cli import main

raise SystemExit(main())
