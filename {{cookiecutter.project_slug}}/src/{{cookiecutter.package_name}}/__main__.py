"""Start the production server and the lifecycle hook server, as the container's CMD does."""

from .microvm.serve import serve

raise SystemExit(serve(f"{__package__}.app"))
