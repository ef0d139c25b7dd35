"""Run microvm-check with ``python -m <package>.microvm.snapcheck``."""

from .cli import main

raise SystemExit(main())
