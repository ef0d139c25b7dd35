"""Run the clone harness: ``python -m <package>.microvm.clones``."""

from .cli import main

raise SystemExit(main())
