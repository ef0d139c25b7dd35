"""Per-VM identity, per-VM values and lifecycle callbacks of one process.

Everything here starts empty in the image snapshot. The ``/run`` hook fills it,
so a value that must differ between MicroVMs is never computed before the
snapshot and shared by every VM restored from it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Callback = Callable[[], Any]
EVENTS = ("run", "resume", "suspend", "terminate")

logger = logging.getLogger("microvm")


class VmNotStartedError(RuntimeError):
    """A per-VM value or the VM identity was read before the /run hook established it."""


@dataclass(frozen=True)
class VmInfo:
    """The identity of the MicroVM this process runs in, set once by /run."""

    microvm_id: str
    # True when the platform sent the id; False when /run came without one and a CSPRNG id was made.
    id_from_platform: bool
    # runHookPayload exactly as the caller of RunMicrovm passed it, or None when absent.
    payload: str | None
    # The payload parsed as JSON when it is JSON text, else None.
    payload_data: Any = None
    image_name: str | None = None
    image_arn: str | None = None
    image_version: str | None = None
    # Wall-clock time (seconds since the epoch) when /run established this identity.
    started_at: float = field(default=0.0)


class PerVm(Generic[T]):
    """A value computed by ``factory`` when /run arrives, one per MicroVM.

    Reading it before /run raises :class:`VmNotStartedError`. With several
    worker processes the value is computed once, in the process that receives
    the hook, and sent to every worker, so it must be picklable.
    """

    def __init__(self, factory: Callable[[], T], name: str) -> None:
        self.factory = factory
        self.name = name
        self._value: Any = _UNSET

    def get(self) -> T:
        value = self._value
        if value is _UNSET:
            raise VmNotStartedError(
                f"per-VM value {self.name!r} was read before the /run hook; read it inside a request handler "
                "or an on_run callback, never at import or during warm-up"
            )
        return value

    __call__ = get

    def __repr__(self) -> str:
        shown = "<not set>" if self._value is _UNSET else "<set>"
        return f"PerVm({self.name!r}, {shown})"


_UNSET = object()
_lock = threading.RLock()
_current: VmInfo | None = None
_per_vm_values: list[PerVm[Any]] = []
_callbacks: dict[str, list[Callback]] = {event: [] for event in EVENTS}


def per_vm(factory: Callable[[], T], name: str | None = None) -> PerVm[T]:
    """Register ``factory`` to run at /run and return the handle that reads its value."""
    if not callable(factory):
        raise TypeError(f"per_vm() needs a callable factory, got {factory!r}")
    handle = PerVm(factory, name or _callable_name(factory))
    with _lock:
        _per_vm_values.append(handle)
    return handle


def _register(event: str) -> Callable[[Callback], Callback]:
    def decorator(callback: Callback) -> Callback:
        if not callable(callback):
            raise TypeError(f"on_{event} needs a callable, got {callback!r}")
        with _lock:
            _callbacks[event].append(callback)
        return callback

    return decorator


on_run = _register("run")
on_run.__doc__ = "Register a callback that runs in every worker at /run, after the per-VM values are set."
on_resume = _register("resume")
on_resume.__doc__ = "Register a callback for /resume: reconnect, refresh credentials, drop caches with a TTL."
on_suspend = _register("suspend")
on_suspend.__doc__ = "Register a callback for /suspend, run after in-flight requests have finished."
on_terminate = _register("terminate")
on_terminate.__doc__ = "Register a callback for /terminate: flush buffers, close connections."


def current_vm() -> VmInfo:
    """Return the identity of this MicroVM, or raise VmNotStartedError before /run."""
    vm = _current
    if vm is None:
        raise VmNotStartedError("the MicroVM identity is not set yet: the /run hook has not finished")
    return vm


def callbacks(event: str) -> list[Callback]:
    with _lock:
        return list(_callbacks[event])


def compute_per_vm_values() -> list[Any]:
    """Call every registered factory, in registration order, and return the values."""
    with _lock:
        handles = list(_per_vm_values)
    return [handle.factory() for handle in handles]


def install_vm(vm: VmInfo, values: list[Any]) -> None:
    """Make ``vm`` the current identity and set the per-VM values computed for it."""
    global _current
    with _lock:
        if len(values) != len(_per_vm_values):
            raise RuntimeError(
                f"got {len(values)} per-VM values for {len(_per_vm_values)} registered ones; "
                "every worker must import the same app module"
            )
        for handle, value in zip(_per_vm_values, values, strict=True):
            handle._value = value
        _current = vm


def reset_for_tests() -> None:
    """Forget the identity and every per-VM value, as in a fresh snapshot. Callbacks stay registered."""
    global _current
    with _lock:
        _current = None
        for handle in _per_vm_values:
            handle._value = _UNSET


def reseed_generators() -> None:
    """Reseed the generators that are not CSPRNGs from the OS, so VMs from one snapshot diverge."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        # The legacy global RandomState; numpy.random.default_rng() seeds itself per call.
        numpy.random.seed()


def make_vm_info(microvm_id: str, id_from_platform: bool, payload: str | None) -> VmInfo:
    """Build the VmInfo for /run; the image variables are the ones the platform sets in the VM."""
    return VmInfo(
        microvm_id=microvm_id,
        id_from_platform=id_from_platform,
        payload=payload,
        payload_data=_parse_json(payload),
        image_name=os.environ.get("AWS_LAMBDA_MICROVM_IMAGE_NAME"),
        image_arn=os.environ.get("AWS_LAMBDA_MICROVM_IMAGE_ARN"),
        image_version=os.environ.get("AWS_LAMBDA_MICROVM_IMAGE_VERSION"),
        started_at=time.time(),
    )


def _parse_json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _callable_name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}.{name}"
