"""Static check for values that every MicroVM would share because they were made before the snapshot.

Every MicroVM of an image version is restored from one memory snapshot, taken
after the app has started and ``/ready`` has answered 200. Whatever the app
generated or opened until then (at import, while building the app object, in a
startup handler or during a warm-up request) is identical in every MicroVM: a
UUID, a token, the state of a random generator, a client with its connection
pool. This package parses the app package with :mod:`ast`, never imports or
runs it, and reports such values with a rule id, the place, the reason and the fix.

Code that runs after ``/run`` is safe and is not reported: request handlers,
factories passed to ``per_vm(...)`` and callbacks registered with ``on_run``,
``on_resume``, ``on_suspend`` or ``on_terminate``.

A finding can be suppressed on its line with a comment that names the rule and
gives a reason::

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
