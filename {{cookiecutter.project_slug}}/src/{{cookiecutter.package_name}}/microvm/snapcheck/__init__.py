"""Static check for values that every MicroVM would share because they were made before the snapshot.

Every MicroVM of an image version is restored from one memory snapshot, taken
after the app has started and ``/ready`` has returned 200. So whatever the app
generated or opened until then is identical in every MicroVM, such as a UUID, a
token, the state of a random generator or a client with its connection pool.
That covers import, building the app object, startup handlers and warm-up
requests. This package parses the app package with :mod:`ast`, never imports or
runs it, and reports such values with a rule id, the place, the reason and the fix.

Code that runs after ``/run`` is safe and is not reported: request handlers,
factories passed to ``per_vm(...)`` and callbacks registered with ``on_run``,
``on_resume``, ``on_suspend`` or ``on_terminate``. Code counts as running before
the snapshot when it is at module level or in a class body (every scanned module
counts as imported), in a default argument value or decorator, in an app factory
(``create_app``, ``make_app``), a lifespan function (also each one of Litestar's
``lifespan=[...]``), a startup handler (``on_startup``, aiohttp's ``app.on_startup`` and
``app.cleanup_ctx``) or Django's ``AppConfig.ready``, or in a function that such code calls. A function cached with
``functools.lru_cache`` or ``functools.cache`` is reported unless only lifecycle
callbacks call it, because warm-up requests reach handlers before the snapshot.
For the same reason, so is a function that caches such a value in a module global
or on a module-level object, behind an ``if`` that tests it.

The analysis sees only the scanned source. It does not follow calls through
variables, ``getattr`` or ``super()``, into other packages, or into modules loaded
with ``importlib``, and it knows only the calls listed in ``rules``.

A finding can be suppressed with a comment on any line of its statement that
names the rule and gives a reason::

    random.seed(42)  # microvm: ignore[MVM003] reason: a fixed seed for a reproducible demo

Run it as ``microvm-check [PATHS...]``. The exit status is 0 with no findings,
1 with findings and 2 for a usage error or a file that does not parse.

Modules: ``rules`` (the rule table and the calls each rule reports), ``source``
(parsing one file), ``analysis`` (which code runs before the snapshot),
``scan`` (files and suppressions) and ``cli``.
"""

from .cli import build_parser, format_text, main
from .findings import Finding, ScanError, ScanResult
from .rules import EXACT_CALLS, PREFIX_CALLS, RULES, SAFE_CALLS, Rule, rule_for
from .scan import PACKAGE_DIR, SKIPPED_SUBPACKAGES, collect_files, scan_paths

__all__ = [
    "EXACT_CALLS",
    "PACKAGE_DIR",
    "PREFIX_CALLS",
    "RULES",
    "SAFE_CALLS",
    "SKIPPED_SUBPACKAGES",
    "Finding",
    "Rule",
    "ScanError",
    "ScanResult",
    "build_parser",
    "collect_files",
    "format_text",
    "main",
    "rule_for",
    "scan_paths",
]
