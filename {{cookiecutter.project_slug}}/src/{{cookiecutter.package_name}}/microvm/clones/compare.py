"""Compare the clones' responses with each other and with the build phase's warm-up responses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .paths import UniquenessPaths

# Placeholder for the clone's MicroVM id in compared response bodies.
MICROVM_ID_PLACEHOLDER = "<microvm-id>"
# Values longer than this are shortened in messages.
MAX_SHOWN_VALUE_CHARS = 120


@dataclass
class WarmupRecord:
    """One warm-up request of the build phase and the response body it got."""

    method: str
    path: str
    status: int
    body: str


PER_VM_RULE = "A per-VM value must differ in every MicroVM restored from the snapshot."
PER_REQUEST_RULE = "A per-request value must differ in every request, in every MicroVM restored from the snapshot."
PER_VM_CAUSE = (
    "Likely cause: the value is made before the snapshot (at import, while the app is built, in a lifespan "
    "startup or during a warm-up request), drawn from a random generator seeded before the snapshot, "
    "derived from the process id, or kept by a cache such as functools.lru_cache."
)
PER_VM_FIX = (
    "Fix: make it after restore, with per_vm(lambda: secrets.token_urlsafe(16)) or in an on_run callback, "
    "and read it in the handler."
)
PER_REQUEST_CAUSE = (
    "Likely cause: the value is cached (functools.lru_cache, a module-level variable), derived from a key or "
    "counter made before the snapshot, or drawn from a random generator that the app seeded itself."
)
PER_REQUEST_FIX = "Fix: make it inside the request handler with secrets, for example secrets.token_urlsafe(32)."


@dataclass(frozen=True)
class Problem:
    """One uniqueness violation or failed request, with the text that explains it."""

    kind: str
    path: str
    clones: tuple[int, ...]
    value: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "clones": list(self.clones),
            "value": self.value,
            "message": self.message,
        }


@dataclass
class CloneReport:
    """The report of one clone: its MicroVM id, its /run response and its responses, or the reason it failed."""

    number: int
    microvm_id: str
    result: dict[str, Any] | None = None
    error: str | None = None


def find_problems(
    warmup: Sequence[WarmupRecord], paths: UniquenessPaths, clones: Sequence[CloneReport]
) -> list[Problem]:
    """Compare the clones' responses with each other and with the build phase's warm-up responses."""
    problems: list[Problem] = []
    # The values of each path as (clone number, masked body), from the clones whose requests all succeeded.
    values: dict[str, list[tuple[int, str]]] = {path: [] for path in (*paths.per_vm, *paths.per_request)}
    for clone in clones:
        problems.extend(_clone_failures(clone, values))

    build_bodies = {record.body: record for record in warmup}
    for path in paths.per_vm:
        seen = values[path]
        problems.extend(_shared_across_clones(path, seen, PER_VM_RULE, PER_VM_CAUSE, PER_VM_FIX))
        problems.extend(_made_before_snapshot(path, seen, build_bodies, PER_VM_FIX))
    for path in paths.per_request:
        seen = values[path]
        problems.extend(_repeated_within_clone(path, seen))
        problems.extend(_shared_across_clones(path, seen, PER_REQUEST_RULE, PER_REQUEST_CAUSE, PER_REQUEST_FIX))
        problems.extend(_made_before_snapshot(path, seen, build_bodies, PER_REQUEST_FIX))
    return problems


def _clone_failures(clone: CloneReport, values: dict[str, list[tuple[int, str]]]) -> list[Problem]:
    if clone.error is not None or clone.result is None:
        return [Problem("clone-failed", "", (clone.number,), "", f"clone {clone.number} failed: {clone.error}")]
    run = clone.result["run"]
    if run["status"] != 200:
        reason = run["body"].get("reason", run["body"])
        message = f"/run returned {run['status']} in clone {clone.number}, so no request was sent: {reason}"
        return [Problem("run-failed", "", (clone.number,), "", message)]
    problems = []
    for kind in ("per_vm", "per_request"):
        for path, responses in clone.result[kind].items():
            failed = [response for response in responses if not 200 <= response["status"] < 300]
            if failed:
                message = (
                    f"GET {path} returned {failed[0]['status']} in clone {clone.number}, after /run: "
                    f"{shorten(failed[0]['body'])}"
                )
                problems.append(Problem("request-failed", path, (clone.number,), "", message))
                continue
            for response in responses:
                values[path].append((clone.number, response["body"].replace(clone.microvm_id, MICROVM_ID_PLACEHOLDER)))
    return problems


def _shared_across_clones(path: str, seen: list[tuple[int, str]], rule: str, cause: str, fix: str) -> list[Problem]:
    clones_by_value: dict[str, list[int]] = {}
    for number, value in seen:
        clones_by_value.setdefault(value, [])
        if number not in clones_by_value[value]:
            clones_by_value[value].append(number)
    problems = []
    for value, numbers in clones_by_value.items():
        if len(numbers) < 2:
            continue
        message = f"GET {path}: {_clones(numbers)} got the same value: {shorten(value)}\n  {rule}\n  {cause}\n  {fix}"
        problems.append(Problem("shared-across-clones", path, tuple(numbers), value, message))
    return problems


def _repeated_within_clone(path: str, seen: list[tuple[int, str]]) -> list[Problem]:
    values_by_clone: dict[int, list[str]] = {}
    for number, value in seen:
        values_by_clone.setdefault(number, []).append(value)
    repeated = {number: values[0] for number, values in values_by_clone.items() if len(set(values)) < len(values)}
    if not repeated:
        return []
    numbers = sorted(repeated)
    value = repeated[numbers[0]]
    subject = _clones(numbers) if len(numbers) == 1 else f"{_clones(numbers)} each"
    message = (
        f"GET {path}: {subject} got the same value in two requests: {shorten(value)}\n"
        f"  {PER_REQUEST_RULE}\n  {PER_REQUEST_CAUSE}\n  {PER_REQUEST_FIX}"
    )
    return [Problem("repeated-within-clone", path, tuple(numbers), value, message)]


def _made_before_snapshot(
    path: str, seen: list[tuple[int, str]], build_bodies: dict[str, WarmupRecord], fix: str
) -> list[Problem]:
    clones_by_value: dict[str, list[int]] = {}
    for number, value in seen:
        if value in build_bodies and number not in clones_by_value.setdefault(value, []):
            clones_by_value[value].append(number)
    problems = []
    for value, numbers in clones_by_value.items():
        record = build_bodies[value]
        message = (
            f"GET {path}: {_clones(numbers)} got {shorten(value)}, the response that the warm-up request "
            f"{record.method} {record.path} got before the snapshot.\n"
            "  Likely cause: the value was computed at import, while the app was built or during warm-up, "
            f"and kept (a module-level variable, an app attribute, a memoised function).\n  {fix}"
        )
        problems.append(Problem("made-before-snapshot", path, tuple(numbers), value, message))
    return problems


def _clones(numbers: Sequence[int]) -> str:
    """Name the clones in a sentence: "clone 2", "clones 1 and 3", "clones 1, 2 and 3"."""
    words = [str(number) for number in numbers]
    if len(words) == 1:
        return f"clone {words[0]}"
    return "clones " + ", ".join(words[:-1]) + " and " + words[-1]


def shorten(text: str) -> str:
    return repr(text) if len(text) <= MAX_SHOWN_VALUE_CHARS else repr(text[:MAX_SHOWN_VALUE_CHARS]) + "..."
