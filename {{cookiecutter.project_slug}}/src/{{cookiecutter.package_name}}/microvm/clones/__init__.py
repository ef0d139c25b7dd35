"""Emulate MicroVMs restored from one snapshot, and check that they share no unique values.

Every MicroVM of an image version is restored from one memory snapshot, taken
after the app has started and ``/ready`` has returned 200. This harness runs
the same build phase in one process. It imports the app module, which builds
the app object (a Flask app factory, Django's setup and ``AppConfig.ready``),
runs the ASGI lifespan startup, and sends the ``[[warmup]]`` requests of
microvm.toml through the app with the warm-up header. Then it forks clones of
that process. In each clone it undoes the two differences between a fork and a
restored snapshot that CPython makes visible, sends ``/run`` with a distinct
MicroVM id through the hook server's code, and requests the paths listed in
``[tool.microvm.uniqueness]`` of pyproject.toml:

* ``per_vm`` paths must return a different value in every clone, and no value
  that a warm-up request got before the snapshot;
* ``per_request`` paths must return a different value in every request, in
  every clone, and no value that a warm-up request got.

A path's value is its whole response body with the clone's MicroVM id replaced
by ``<microvm-id>``, because the harness chose those ids itself.

Run it in a fresh process from the project root, so that the import of the app
is part of the emulated build phase::

    python -m <package>.microvm.clones [--json]

Exit status: 0 when no value is shared, 1 when one is or a request failed,
2 when the arguments or the build phase failed. docs/uniqueness.md lists what
a fork cannot reproduce.
"""

from __future__ import annotations

from .cli import main
from .compare import CloneReport, Problem, WarmupRecord, find_problems
from .errors import CloneTimeoutError, HarnessError
from .fork import emulate_restore, run_in_clone
from .harness import DEFAULT_CLONE_TIMEOUT_SECONDS, DEFAULT_CLONES, Report, check_clones, run_build_phase
from .paths import DEFAULT_PER_REQUEST, DEFAULT_PER_VM, UniquenessPaths, read_uniqueness_paths

__all__ = [
    "DEFAULT_CLONES",
    "DEFAULT_CLONE_TIMEOUT_SECONDS",
    "DEFAULT_PER_REQUEST",
    "DEFAULT_PER_VM",
    "CloneReport",
    "CloneTimeoutError",
    "HarnessError",
    "Problem",
    "Report",
    "UniquenessPaths",
    "WarmupRecord",
    "check_clones",
    "emulate_restore",
    "find_problems",
    "main",
    "read_uniqueness_paths",
    "run_build_phase",
    "run_in_clone",
]
