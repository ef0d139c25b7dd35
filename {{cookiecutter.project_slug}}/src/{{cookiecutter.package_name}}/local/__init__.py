"""Local MicroVM emulator: drive the app through the platform's lifecycle on 127.0.0.1.

``microvm-local`` (or ``python -m <package>.local``) starts the app as the
container CMD does. It calls the lifecycle hooks in the platform's order, under
the platform's status rules and timeouts. Each emulated MicroVM gets an
endpoint that checks tokens and routes ports like the platform's proxy.
docs/local.md describes the commands and what the emulator cannot reproduce.
Runtime dependencies: the standard library only.
"""

from .cli import main

__all__ = ["main"]
