"""The parts of scripts/benchmark.py.

- ``common``: paths, app kinds and the run's plan.
- ``environments``: bake the template, create the virtual environments, measure their size.
- ``servers``: the apps under test, their processes and the fork server, readiness and hook calls.
- ``load``: the keep-alive load generator.
- ``memory``: RSS, USS and PSS of a process tree from /proc.
- ``stats``: percentiles.
- ``measure``: the measurements themselves.
- ``report``: the targets and the Markdown report.
"""
