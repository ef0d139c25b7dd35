"""Build the code artifact of a MicroVM image: a deterministic zip of the build context.

The image builder unpacks the zip and runs ``Dockerfile`` from its root, so the
zip contains the same files that ``docker build`` would send as its context: every
file under the project root that ``.dockerignore`` does not exclude. Entries are
sorted, every timestamp is 1980-01-01 00:00:00 (the earliest a zip can store) and
every mode is 0644, or 0755 for files with the owner's execute bit. So the same
tree gives a byte-identical zip and the same SHA-256 wherever zlib compresses the
same way, which holds within one zlib version.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .dockerignore import DockerIgnore, compile_pattern
from .errors import DeployError, UsageError

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
# Docker always sends these two files, even when .dockerignore lists them.
ALWAYS_INCLUDED = ("Dockerfile", ".dockerignore")
# Version-control metadata is never part of an image build, whatever .dockerignore contains.
ALWAYS_EXCLUDED_DIRECTORIES = (".git",)
HASH_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Package:
    """A written code artifact."""

    path: Path
    sha256: str
    size_bytes: int
    entries: tuple[str, ...]


def build_package(root: Path, output: Path) -> Package:
    """Write the zip of the build context under ``root`` to ``output`` and return its digest.

    Raises UsageError when ``root`` has no Dockerfile, and DeployError when a file
    the Dockerfile copies is missing from the context or cannot be stored.
    """
    root = root.resolve()
    output = output.resolve()
    dockerfile = root / "Dockerfile"
    if not dockerfile.is_file():
        raise UsageError(
            f"no Dockerfile in {root}; run the command from the project root or pass --root with the folder "
            "that contains the Dockerfile"
        )

    entries = collect_entries(root, DockerIgnore.from_file(root / ".dockerignore"), output)
    missing = missing_copy_sources(copy_sources(dockerfile.read_text(encoding="utf-8")), entries)
    if missing:
        raise DeployError(
            f"the Dockerfile copies {', '.join(missing)}, but the build context has no such file; "
            "fix the path in the Dockerfile or remove the pattern in .dockerignore that excludes it"
        )

    output.parent.mkdir(parents=True, exist_ok=True)
    write_zip(root, entries, output)
    return Package(path=output, sha256=file_sha256(output), size_bytes=output.stat().st_size, entries=tuple(entries))


def collect_entries(root: Path, ignore: DockerIgnore, output: Path) -> list[str]:
    """Return the sorted POSIX paths, relative to ``root``, of every file in the build context."""
    skipped = {_relative(root, output)} if output.is_relative_to(root) else set()
    output_directory = output.parent
    # Earlier zips in the output folder would change the next zip, so that folder is skipped
    # unless it is the root itself.
    if output_directory != root and output_directory.is_relative_to(root):
        skipped_directory: str | None = _relative(root, output_directory)
    else:
        skipped_directory = None

    entries = []
    for relative, path in _walk(root, ignore, skipped_directory):
        if relative in skipped:
            continue
        if relative not in ALWAYS_INCLUDED and ignore.is_excluded(relative):
            continue
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise DeployError(
                f"{relative} is a symbolic link, and the zip stores regular files only; "
                "replace it with the file it points to or add it to .dockerignore"
            )
        if not stat.S_ISREG(mode):
            raise DeployError(f"{relative} is not a regular file; add it to .dockerignore")
        entries.append(relative)
    return sorted(entries)


def _walk(root: Path, ignore: DockerIgnore, skipped_directory: str | None) -> Iterator[tuple[str, Path]]:
    for directory, subdirectories, files in os.walk(root):
        base = Path(directory)
        descended = []
        for name in sorted(subdirectories):
            relative = _relative(root, base / name)
            if relative in ALWAYS_EXCLUDED_DIRECTORIES or relative == skipped_directory:
                continue
            if (base / name).is_symlink():
                # os.walk does not descend into linked directories, so report the link as a file.
                files.append(name)
                continue
            if ignore.is_excluded(relative) and not ignore.may_include_below(relative):
                continue
            descended.append(name)
        subdirectories[:] = descended
        for name in sorted(files):
            path = base / name
            yield _relative(root, path), path


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def write_zip(root: Path, entries: list[str], output: Path) -> None:
    """Write ``entries`` into a zip at ``output`` with fixed timestamps and modes.

    The zip is written to a temporary file in the same folder and then renamed,
    so an interrupted run never leaves a truncated zip at ``output``.
    """
    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(descriptor)
    temporary = Path(temporary_name)
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative in entries:
                source = root / relative
                info = zipfile.ZipInfo(relative, date_time=ZIP_TIMESTAMP)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix, so that extractors apply external_attr as a file mode.
                mode = EXECUTABLE_MODE if source.stat().st_mode & stat.S_IXUSR else FILE_MODE
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.file_size = source.stat().st_size
                with source.open("rb") as reader, archive.open(info, "w") as writer:
                    while chunk := reader.read(HASH_CHUNK_BYTES):
                        writer.write(chunk)
        temporary.chmod(FILE_MODE)
        temporary.replace(output)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        while chunk := reader.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")


def copy_sources(dockerfile_text: str) -> list[str]:
    """Return the build-context paths that the Dockerfile's COPY and ADD instructions read.

    Sources that the check cannot resolve are left out rather than guessed: those
    copied from another stage or image (``--from``), URLs, here-documents, and
    paths that contain a variable.
    """
    sources: list[str] = []
    for keyword, arguments in _instructions(dockerfile_text):
        if keyword not in ("COPY", "ADD"):
            continue
        tokens = _arguments(arguments)
        flags = [token for token in tokens if token.startswith("--")]
        paths = [token for token in tokens if not token.startswith("--")]
        if any(flag.startswith("--from") for flag in flags) or len(paths) < 2:
            continue
        for source in paths[:-1]:
            if "$" in source or source.startswith("<<") or "://" in source or source.startswith("git@"):
                continue
            cleaned = posixpath.normpath(source.lstrip("/")) if source.strip("/") else "."
            if cleaned != ".":
                sources.append(cleaned)
    return sources


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """Yield (keyword, arguments) for each Dockerfile instruction, joining continuation lines."""
    lines = text.splitlines()
    escape = "\\"
    for line in lines:
        directive = re.fullmatch(r"#\s*escape\s*=\s*(\S)\s*", line.strip())
        if directive:
            escape = directive.group(1)
            continue
        if not line.strip().startswith("#"):
            break

    current = ""
    heredoc_end: tuple[str, bool] | None = None
    for line in lines:
        if heredoc_end is not None:
            word, strip_tabs = heredoc_end
            if (line.lstrip("\t") if strip_tabs else line) == word:
                heredoc_end = None
            continue
        stripped = line.strip()
        # Comment and blank lines are dropped, also inside a continued instruction.
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith(escape):
            current += stripped[: -len(escape)] + " "
            continue
        current += stripped
        keyword, _, arguments = current.strip().partition(" ")
        current = ""
        heredoc = _HEREDOC.search(arguments)
        if heredoc:
            heredoc_end = (heredoc.group(3), heredoc.group(1) == "-")
        yield keyword.upper(), arguments.strip()


def _arguments(arguments: str) -> list[str]:
    if arguments.startswith("["):
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError:
            return arguments.split()
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
    return arguments.split()


def missing_copy_sources(sources: list[str], entries: list[str]) -> list[str]:
    """Return the ``sources`` that match no entry, either as a file, a folder or a glob."""
    missing = []
    for source in sources:
        pattern = compile_pattern(source)
        if not any(pattern.matches(entry) for entry in entries):
            missing.append(source)
    return missing
