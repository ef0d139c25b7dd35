"""Run ``microvm-local`` as ``python -m <package>.local``."""

from .cli import main

raise SystemExit(main())
