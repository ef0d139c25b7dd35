"""Match paths against ``.dockerignore`` patterns the way the Docker builder does.

The rules follow Docker's documented ``.dockerignore`` format:

- A line that starts with ``#`` is a comment, and blank lines are skipped.
- Each pattern is cleaned like a path (``./a//b/`` becomes ``a/b``), and a leading
  ``/`` is dropped, because every pattern is relative to the build context.
- ``*`` matches any run of characters except ``/``, ``?`` matches one such character,
  ``[...]`` is a character class (``[!...]`` negates it), ``\\`` escapes the next
  character, and ``**`` matches any number of directories, including none.
- A pattern that matches a directory also matches everything below it.
- A pattern that starts with ``!`` re-includes what earlier patterns excluded, and
  the last pattern that matches a path decides.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    """One cleaned ``.dockerignore`` pattern and its compiled regular expression."""

    text: str
    regex: re.Pattern[str]
    exclusion: bool

    def matches(self, path: str) -> bool:
        """Return whether the pattern matches ``path`` or one of its parent directories."""
        if self.regex.fullmatch(path):
            return True
        parts = path.split("/")
        return any(self.regex.fullmatch("/".join(parts[:count])) for count in range(1, len(parts)))


def clean_pattern(line: str) -> str | None:
    """Return the cleaned pattern of one ``.dockerignore`` line, or None for comments and blank lines."""
    if line.startswith("#"):
        return None
    text = line.strip()
    if not text:
        return None
    exclusion = text.startswith("!")
    if exclusion:
        text = text[1:].strip()
        if not text:
            return None
    text = posixpath.normpath(text)
    if len(text) > 1 and text.startswith("/"):
        text = text.lstrip("/")
    return ("!" if exclusion else "") + text


def compile_pattern(text: str) -> Pattern:
    """Compile one cleaned pattern into a :class:`Pattern`."""
    exclusion = text.startswith("!")
    body = text[1:] if exclusion else text
    return Pattern(text=text, regex=re.compile(_translate(body), re.DOTALL), exclusion=exclusion)


def _translate(pattern: str) -> str:
    """Translate a glob pattern with ``**`` into a regular expression matched against whole paths."""
    parts: list[str] = []
    index = 0
    length = len(pattern)
    while index < length:
        char = pattern[index]
        index += 1
        if char == "*":
            if index < length and pattern[index] == "*":
                index += 1
                if index < length and pattern[index] == "/":
                    index += 1
                # "**" at the end matches everything below; elsewhere it matches zero or more directories.
                parts.append(".*" if index >= length else "(?:.*/)?")
            else:
                parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "\\":
            if index < length:
                parts.append(re.escape(pattern[index]))
                index += 1
            else:
                parts.append(re.escape("\\"))
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                parts.append(re.escape(char))
                continue
            members = pattern[index:end]
            index = end + 1
            negated = members.startswith(("!", "^"))
            if negated:
                members = members[1:]
            members = members.replace("\\", "\\\\")
            parts.append(f"[{'^' if negated else ''}{members}]")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


class DockerIgnore:
    """The patterns of one ``.dockerignore`` file, in file order."""

    def __init__(self, patterns: Iterable[str]) -> None:
        cleaned = (clean_pattern(line) for line in patterns)
        self.patterns = [compile_pattern(text) for text in cleaned if text]

    @classmethod
    def from_file(cls, path: Path) -> DockerIgnore:
        """Read ``path``, or return an empty matcher when the file does not exist."""
        if not path.is_file():
            return cls([])
        text = path.read_text(encoding="utf-8-sig")
        return cls(text.splitlines())

    def is_excluded(self, path: str) -> bool:
        """Return whether the context-relative POSIX ``path`` is left out of the build context."""
        excluded = False
        for pattern in self.patterns:
            if pattern.matches(path):
                excluded = not pattern.exclusion
        return excluded

    def may_include_below(self, directory: str) -> bool:
        """Return whether a ``!`` pattern could re-include something below an excluded ``directory``.

        The packager skips an excluded directory only when this returns False, so
        that large excluded trees such as ``.venv`` are not walked.
        """
        prefix = directory.rstrip("/") + "/"
        for pattern in self.patterns:
            if not pattern.exclusion:
                continue
            body = pattern.text[1:]
            literal = re.split(r"[*?\[\\]", body, maxsplit=1)[0]
            # A wildcard before the first "/" can match any directory name, so stay conservative.
            if literal.startswith(prefix) or prefix.startswith(literal):
                return True
        return False
