"""Memory of a process tree from /proc: RSS, USS and PSS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MemoryUsage:
    """Memory of a process and its descendants, summed, in bytes."""

    rss: int
    uss: int
    pss: int
    processes: int


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and every descendant, found through the parent ids in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process exited while the scan ran
        # The command name is in parentheses and may contain spaces, so split after its closing one.
        fields = stat.rpartition(")")[2].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree = [pid]
    for current in tree:
        tree.extend(children.get(current, []))
    return tree


def read_smaps_rollup(pid: int) -> dict[str, int]:
    """Return the fields of /proc/<pid>/smaps_rollup in bytes."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            values[name] = int(parts[0]) * 1024
    return values


def memory_usage(pid: int) -> MemoryUsage:
    """Sum RSS, USS (Private_Clean + Private_Dirty) and PSS over a process and its descendants."""
    rss = uss = pss = 0
    pids = process_tree(pid)
    for member in pids:
        fields = read_smaps_rollup(member)
        rss += fields.get("Rss", 0)
        uss += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        pss += fields.get("Pss", 0)
    return MemoryUsage(rss=rss, uss=uss, pss=pss, processes=len(pids))
