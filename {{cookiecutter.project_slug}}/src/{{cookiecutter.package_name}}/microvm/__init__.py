"""The MicroVM lifecycle layer: hooks, per-VM state and request gating for any framework.

Application code uses this API::

    from .microvm import current_vm, on_resume, on_run, per_vm

    session_id = per_vm(lambda: secrets.token_urlsafe(16))  # computed at /run, one per VM

    @on_resume
    def reconnect() -> None: ...

Reading ``session_id.get()`` or ``current_vm()`` before /run raises
:class:`VmNotStartedError`. This package holds no Jinja and no framework code;
each framework's ``app.py`` wraps its app with :func:`wsgi` or :func:`asgi`.
"""

from .gate import GatedASGI as asgi
from .gate import GatedWSGI as wsgi
from .gate import draining
from .state import (
    PerVm,
    VmInfo,
    VmNotStartedError,
    current_vm,
    on_resume,
    on_run,
    on_suspend,
    on_terminate,
    per_vm,
)

__all__ = [
    "PerVm",
    "VmInfo",
    "VmNotStartedError",
    "asgi",
    "current_vm",
    "draining",
    "on_resume",
    "on_run",
    "on_suspend",
    "on_terminate",
    "per_vm",
    "wsgi",
]
