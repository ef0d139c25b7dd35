"""The ``microvm-local`` command line: build, run, token and demo."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ..microvm.config import APP_PACKAGE, Settings, SettingsError, load_settings
from .demo import DEMO_PAYLOAD, run_demo
from .emulator import Emulator
from .process import LaunchConfig, default_command
from .timeline import ContractViolation, Timeline
from .tokens import (
    MAX_EXPIRATION_MINUTES,
    TOKEN_HEADER,
    KeyFileError,
    PortRange,
    default_state_dir,
    load_or_create_key,
    mint_token,
    parse_port_spec,
)
from .vm import EmulatedMicrovm, IdlePolicy, validate_payload

# RunMicrovm's maximumDurationInSeconds goes up to 8 hours.
MAX_DURATION_SECONDS = 28_800
MAX_MICROVMS = 16

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# 128 + SIGINT, the shell convention for a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130


# -- argument types ---------------------------------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is invalid; use a number of seconds above 0 and at most {MAX_DURATION_SECONDS}, for example 1.5"
        )
    return value


def _non_negative_seconds(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return _positive_seconds(text)


def _microvm_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_MICROVMS:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; use a whole number from 1 to {MAX_MICROVMS}")
    return int(text)


def _port_number(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; use a port from 1 to 65535, or 0 for free ports")
    return int(text)


def _port_spec(text: str) -> PortRange:
    try:
        return parse_port_spec(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _expiration_minutes(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_EXPIRATION_MINUTES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is invalid; use a whole number of minutes from 1 to {MAX_EXPIRATION_MINUTES}, "
            "the range the platform accepts"
        )
    return int(text)


def _payload(text: str) -> str:
    try:
        validate_payload(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


# -- parser -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microvm-local",
        description="Emulate the AWS Lambda MicroVM lifecycle on 127.0.0.1: start the app as the container CMD "
        "does, call its lifecycle hooks with the platform's rules, and serve each emulated MicroVM behind an "
        "authenticating endpoint like the platform's proxy.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="directory for the token signing key (default: $MICROVM_LOCAL_STATE_DIR, else "
        f"$XDG_STATE_HOME/microvm-local/{APP_PACKAGE})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    launch = argparse.ArgumentParser(add_help=False)
    launch.add_argument(
        "--poll-interval",
        type=_positive_seconds,
        default=0.2,
        metavar="SECONDS",
        help="time between polls of /ready and /validate while they return 503 (default: 0.2)",
    )
    launch.add_argument(
        "--stop-timeout",
        type=_positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="time an app process gets to exit after SIGTERM before SIGKILL (default: 5)",
    )
    launch.add_argument(
        "--app-output",
        choices=("show", "tail"),
        help="show: print every line the app writes; tail: keep the last lines and print them when a rule breaks "
        "(default: show for run, tail for build and demo)",
    )

    commands.add_parser(
        "build",
        parents=[launch],
        help="start the app and run the image-build hooks (/ready, then /validate), then stop it",
        description="Start the app as the container CMD does, poll /ready until 200 (the snapshot point), "
        "poll /validate the same way, then stop the app.",
    )

    run = commands.add_parser(
        "run",
        parents=[launch],
        help="build and run emulated MicroVMs, each behind its own endpoint, until Ctrl-C",
        description="Build and run emulated MicroVMs, each its own app process behind its own endpoint on "
        "127.0.0.1, until Ctrl-C, --max-duration, or every MicroVM has terminated.",
    )
    run.add_argument("--vms", type=_microvm_count, default=1, metavar="N", help="number of MicroVMs (default: 1)")
    payload = run.add_mutually_exclusive_group()
    payload.add_argument(
        "--payload", type=_payload, default="", help="runHookPayload sent in every /run body (default: empty)"
    )
    payload.add_argument("--payload-file", type=Path, metavar="PATH", help="read the runHookPayload from a file")
    run.add_argument(
        "--max-idle",
        type=_positive_seconds,
        metavar="SECONDS",
        help="suspend a MicroVM after this long without traffic through its endpoint; the platform's minimum "
        "is 60, shorter values are for local trials (default: never suspend)",
    )
    run.add_argument(
        "--suspended-duration",
        type=_non_negative_seconds,
        default=600.0,
        metavar="SECONDS",
        help="terminate a MicroVM after this long suspended; 0 terminates it when it suspends (default: 600)",
    )
    run.add_argument(
        "--no-auto-resume",
        action="store_true",
        help="respond with 502 to traffic for a suspended MicroVM instead of resuming it",
    )
    run.add_argument(
        "--endpoint-port",
        type=_port_number,
        default=0,
        metavar="PORT",
        help="port of the first endpoint; the others take the next ports (default: 0, free ports)",
    )
    run.add_argument(
        "--max-duration",
        type=_positive_seconds,
        default=3600.0,
        metavar="SECONDS",
        help=f"terminate every MicroVM after this long, like maximumDurationInSeconds (default: 3600, "
        f"at most {MAX_DURATION_SECONDS})",
    )

    token = commands.add_parser(
        "token",
        help=f"print a token for the {TOKEN_HEADER} header of the emulated endpoints",
        description=f"Print a token for the {TOKEN_HEADER} header, the local stand-in for CreateMicrovmAuthToken. "
        "The token goes to standard output, a description to standard error.",
    )
    token.add_argument(
        "--port",
        type=_port_spec,
        action="append",
        metavar="PORT[-PORT]",
        help="port or port range the token allows; repeat for more (default: the app port)",
    )
    token.add_argument("--all-ports", action="store_true", help="allow every port, as allPorts does")
    token.add_argument(
        "--expires-in",
        type=_expiration_minutes,
        default=15,
        metavar="MINUTES",
        help=f"validity in minutes, 1 to {MAX_EXPIRATION_MINUTES} (default: 15)",
    )
    token.add_argument(
        "--microvm-id", metavar="ID", help="accept the token only at this MicroVM's endpoint (default: any)"
    )

    demo = commands.add_parser(
        "demo",
        parents=[launch],
        help="run the whole lifecycle once, check every step and exit 0 only if all held",
        description="Build two MicroVMs, read /session through the proxy from each, let the first one suspend "
        "when idle and resume it with a request, then terminate both.",
    )
    demo.add_argument(
        "--max-idle",
        type=_positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="idle time after which the first MicroVM suspends (default: 1)",
    )
    demo.add_argument(
        "--payload", type=_payload, default=DEMO_PAYLOAD, help=f"runHookPayload (default: {DEMO_PAYLOAD})"
    )
    return parser


# -- commands ---------------------------------------------------------------------------------------


def _launch_config(arguments: argparse.Namespace, show_output_default: bool) -> LaunchConfig:
    show = show_output_default if arguments.app_output is None else arguments.app_output == "show"
    return LaunchConfig(
        command=default_command(APP_PACKAGE),
        poll_interval_seconds=arguments.poll_interval,
        stop_timeout_seconds=arguments.stop_timeout,
        show_output=show,
    )


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived before the awaited work finished."""


def _run_async(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """Run ``main(stop)``, where ``stop`` is set by SIGINT or SIGTERM, and return its exit status.

    ``main`` must respond to ``stop`` by stopping every app process it started.
    """

    async def wrapper() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def request_stop() -> None:
            if stop.is_set():
                print(
                    "microvm-local: already stopping; app processes get SIGKILL after --stop-timeout", file=sys.stderr
                )
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, request_stop)
        try:
            return await main(stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    try:
        return asyncio.run(wrapper())
    except KeyboardInterrupt:
        # A second Ctrl-C after main() returned, while asyncio closes the loop.
        return EXIT_INTERRUPTED


async def _unless_stopped(work: Coroutine[Any, Any, Any], stop: asyncio.Event) -> Any:
    """Await ``work``; if ``stop`` is set first, cancel it, let its cleanup run, and raise Interrupted."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    raise Interrupted


def _report(timeline: Timeline, violations: Sequence[ContractViolation], microvms: Sequence[EmulatedMicrovm]) -> None:
    for violation in violations:
        timeline.say(violation.report())
        for microvm in microvms:
            if microvm.id == violation.microvm and microvm.process.output:
                timeline.say(f"last lines of output from {microvm.id}:\n{microvm.process.output_tail()}")


def command_build(settings: Settings, arguments: argparse.Namespace) -> int:
    timeline = Timeline()
    launch = _launch_config(arguments, show_output_default=False)

    async def build_and_stop(microvm: EmulatedMicrovm) -> None:
        reason = "build interrupted"
        try:
            await microvm.build()
            reason = "image build finished; the platform discards the build VM"
        except ContractViolation:
            reason = "image build failed"
            raise
        finally:
            await microvm.terminate(reason)

    async def main(stop: asyncio.Event) -> int:
        microvm = EmulatedMicrovm(settings, timeline, launch, microvm_id="image-build")
        timeline.say(f"build: starting {' '.join(launch.command)} as the container CMD")
        try:
            await _unless_stopped(build_and_stop(microvm), stop)
        except ContractViolation:
            pass
        except Interrupted:
            timeline.say("build interrupted; the app process was stopped")
            return EXIT_INTERRUPTED
        if microvm.violation is not None:
            _report(timeline, [microvm.violation], [microvm])
            timeline.say("build FAILED")
            return EXIT_FAILED
        timeline.say("build passed: every enabled build hook returned 200 within its timeout")
        return EXIT_OK

    return _run_async(main)


def command_run(settings: Settings, arguments: argparse.Namespace, key: bytes) -> int:
    timeline = Timeline()
    launch = _launch_config(arguments, show_output_default=True)
    payload = arguments.payload
    if arguments.payload_file is not None:
        try:
            payload = arguments.payload_file.read_text(encoding="utf-8")
            validate_payload(payload)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            print(f"microvm-local: --payload-file {arguments.payload_file}: {error}", file=sys.stderr)
            return EXIT_USAGE
    idle_policy = None
    if arguments.max_idle is not None:
        idle_policy = IdlePolicy(arguments.max_idle, arguments.suspended_duration, not arguments.no_auto_resume)

    async def main(stop: asyncio.Event) -> int:
        emulator = Emulator(settings, timeline, launch, key, stop_requested=stop)
        interrupted = False
        try:
            microvms = await _unless_stopped(
                emulator.launch_microvms(
                    arguments.vms, payload, [idle_policy] * arguments.vms, arguments.endpoint_port
                ),
                stop,
            )
            for microvm in microvms:
                url = emulator.endpoints[microvm.id].url
                timeline.say(
                    f"{microvm.id} serves {url}\n"
                    f"  TOKEN=$(microvm-local token --microvm-id {microvm.id})\n"
                    f'  curl -H "{TOKEN_HEADER}: $TOKEN" {url}/healthz'
                )
            timeline.say("press Ctrl-C to terminate every MicroVM")
            reason = await emulator.wait(arguments.max_duration)
        except ContractViolation:
            reason = "a lifecycle rule was broken"
        except Interrupted:
            reason = "interrupted while launching"
            interrupted = True
        finally:
            await emulator.shutdown("emulator stopping")
        timeline.say(f"stopped: {reason}")
        _report(timeline, emulator.violations, emulator.microvms)
        if emulator.violations:
            return EXIT_FAILED
        return EXIT_INTERRUPTED if interrupted else EXIT_OK

    return _run_async(main)


def command_token(settings: Settings, arguments: argparse.Namespace, key: bytes) -> int:
    if arguments.all_ports and arguments.port:
        print("microvm-local token: use either --port or --all-ports, not both", file=sys.stderr)
        return EXIT_USAGE
    ports = None if arguments.all_ports else (arguments.port or [PortRange(settings.app_port, settings.app_port)])
    token = mint_token(
        key, allowed_ports=ports, expiration_minutes=arguments.expires_in, microvm_id=arguments.microvm_id
    )
    expiry = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + arguments.expires_in * 60))
    allowed = "all ports" if ports is None else "port(s) " + ", ".join(str(port) for port in ports)
    scope = arguments.microvm_id or "any emulated MicroVM"
    print(f"token for {allowed} of {scope}, valid until {expiry}; send it as {TOKEN_HEADER}", file=sys.stderr)
    if ports is None or any(settings.hooks_port in port for port in ports):
        print(
            f"warning: this token allows the hooks port {settings.hooks_port}, so whoever holds it can call the "
            "lifecycle hooks; the platform's proxy allows the same, so never grant it in production",
            file=sys.stderr,
        )
    print(token)
    return EXIT_OK


def command_demo(settings: Settings, arguments: argparse.Namespace, key: bytes) -> int:
    timeline = Timeline()
    launch = _launch_config(arguments, show_output_default=False)

    async def main(stop: asyncio.Event) -> int:
        try:
            passed = await _unless_stopped(
                run_demo(
                    settings, timeline, launch, key, max_idle_seconds=arguments.max_idle, payload=arguments.payload
                ),
                stop,
            )
        except Interrupted:
            timeline.say("demo interrupted; every app process was stopped")
            return EXIT_INTERRUPTED
        return EXIT_OK if passed else EXIT_FAILED

    return _run_async(main)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``microvm-local`` with ``argv`` (default: the process arguments) and return the exit status."""
    arguments = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"microvm-local: invalid settings: {error}", file=sys.stderr)
        return EXIT_USAGE
    if arguments.command == "build":
        return command_build(settings, arguments)
    state_dir = arguments.state_dir or default_state_dir(APP_PACKAGE)
    try:
        key = load_or_create_key(state_dir)
    except (KeyFileError, OSError) as error:
        print(f"microvm-local: {error}", file=sys.stderr)
        return EXIT_USAGE
    if arguments.command == "run":
        return command_run(settings, arguments, key)
    if arguments.command == "token":
        return command_token(settings, arguments, key)
    return command_demo(settings, arguments, key)
