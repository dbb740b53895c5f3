"""Operating a host's pools: ``lptrack inspect`` and ``lptrack cleanup``.

Both attach as observers (``lptrack._native.open_observer``): they never
enter a segment's registry of users and never take its lock, so they work
while a holder is stuck or dead, and never keep a stale segment alive.

``inspect`` reads a live pool without writing to it.  ``cleanup`` removes the
lptrack segments no live process uses:

* a native segment of this layout, by its registry of users (csrc/lpt_liveness.h):
  removed only when no registered process runs, through the same retire
  protocol a starting process uses, so a process attaching at that moment is
  either seen (the segment stays) or re-creates its session;
* any other lptrack segment (the pure engine's, another layout version, one
  never initialised): removed only when it is this user's, older than
  ``GRACE_SECONDS`` and no process maps it (``/proc/<pid>/maps``), since
  there is no registry to ask.  Processes of other users are invisible there,
  which is why another user's segment is never removed.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from lptrack import _shm
from lptrack._table import COMPLETION_COUNT, LABEL_HASH, LP_SCORE, TASK_ID
from lptrack.errors import LayoutMismatchError, SegmentError

#: A segment without a registry younger than this may still be being set up.
GRACE_SECONDS = 10.0
#: How long a retired mark must last to count as abandoned by a dead remover.
RETIRED_SETTLE_SECONDS = 0.1


def _native_name(session: str) -> str:
    from lptrack._native import SEGMENT_KIND

    if session.startswith(_shm.SEGMENT_PREFIX):
        return session
    return _shm.segment_name(session, SEGMENT_KIND)


def _candidate_names(session: str) -> tuple[str, ...]:
    """The segment names ``session`` may stand for: itself, or a session id's segments of either engine."""
    if session.startswith(_shm.SEGMENT_PREFIX):
        return (session,)
    from lptrack._pytable import SEGMENT_KIND as PYTHON_KIND

    return (_native_name(session), _shm.segment_name(session, PYTHON_KIND))


# -- inspect ------------------------------------------------------------------------------------
def inspect(session: str, top: int = 10) -> dict[str, Any]:
    """A summary of the native pool of ``session`` (a session id or a segment name)."""
    from lptrack._core import process_alive
    from lptrack._native import open_observer

    name = _native_name(session)
    try:
        table = open_observer(name)
    except FileNotFoundError:
        raise FileNotFoundError(_missing_session_message(session, name)) from None
    try:
        rows = table.rows.copy()  # racy as a whole; the top rows are re-read consistently
        slots = np.flatnonzero(rows[:, TASK_ID] != 0.0)
        rows = rows[slots]
        order = np.argsort(-rows[:, LP_SCORE], kind="stable")[:top]
        top_tasks = []
        for slot in slots[order].tolist():
            row = table.read_row(slot)
            if row[TASK_ID] == 0.0:
                continue  # removed since the copy
            label = table.label_for_hash(int(row[LABEL_HASH])) if row[LABEL_HASH] else None
            top_tasks.append({"task_id": int(row[TASK_ID]), "lp_score": float(row[LP_SCORE]),
                              "completion_count": int(row[COMPLETION_COUNT]), "label": label})
        labels: dict[str, dict[str, int]] = {}
        for hash_value, count in zip(rows[:, LABEL_HASH].tolist(), rows[:, COMPLETION_COUNT].tolist()):
            label = table.label_for_hash(int(hash_value)) if hash_value else None
            entry = labels.setdefault("(none)" if label is None else label, {"tasks": 0, "completions": 0})
            entry["tasks"] += 1
            entry["completions"] += int(count)
        holder = table.lock_owner_pid
        return {
            "segment": name,
            "segment_bytes": table.segment_bytes,
            "capacity": table.capacity,
            "row_width": table.row_width,
            "active_tasks": len(table),
            "generation": table.generation,
            "counters": {
                "updates": table.update_count,
                "recomputations": table.recomputation_count,
                "lock_waits": table.lock_wait_count,
                "recoveries": table.recovery_count,
            },
            "creator_pid": table.creator_pid,
            "lock_holder_pid": holder or None,
            "lock_holder_alive": process_alive(holder) if holder else None,
            "live_pids": table.live_pids(prune=False),
            "registry_overflowed": table.registry_overflowed,
            "top_tasks": top_tasks,
            "labels": dict(sorted(labels.items())),
        }
    finally:
        table.close()


def _missing_session_message(session: str, name: str) -> str:
    listing = "'lptrack cleanup --dry-run' lists the lptrack sessions on this host"
    python_names = [n for n in _candidate_names(session) if n != name and os.path.exists(os.path.join(_shm.SHM_DIR, n))]
    if python_names:
        return (f"session {session!r} runs on the pure-Python engine (engine='python'), whose pools "
                f"lptrack inspect cannot read; {listing}")
    return f"no session {session!r} on this host (no {_shm.SHM_DIR}/{name}); {listing}"


def format_inspect(summary: dict[str, Any], top: int | None = None) -> str:
    """The text report of ``inspect``; ``top=0`` (nothing asked for) leaves out the top tasks."""
    counters = summary["counters"]
    holder = summary["lock_holder_pid"]
    if holder is None:
        lock = "free"
    else:
        lock = f"held by pid {holder}" + ("" if summary["lock_holder_alive"] else " (dead: the next locker recovers)")
    users = ", ".join(map(str, summary["live_pids"])) or "none"
    if summary["registry_overflowed"]:
        users += " (registry overflowed: more users than listed)"
    lines = [
        f"segment      {summary['segment']} ({summary['segment_bytes']} bytes)",
        f"tasks        {summary['active_tasks']} / {summary['capacity']} (row width {summary['row_width']})",
        f"generation   {summary['generation']}",
        "counters     " + ", ".join(f"{key} {value}" for key, value in counters.items()),
        f"lock         {lock}",
        f"creator pid  {summary['creator_pid']}",
        f"live users   {users}",
    ]
    if top != 0:
        lines.append("top tasks by lp_score:")
        lines += [
            f"  {t['task_id']:>16}  lp_score {t['lp_score']:.6g}  completions {t['completion_count']}"
            + (f"  label {t['label']}" if t["label"] is not None else "")
            for t in summary["top_tasks"]
        ] or ["  (none)"]
    lines.append("labels:")
    lines += [
        f"  {label}: {entry['tasks']} tasks, {entry['completions']} completions"
        for label, entry in summary["labels"].items()
    ] or ["  (none)"]
    return "\n".join(lines)


# -- cleanup ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CleanupEntry:
    name: str
    removable: bool
    removed: bool
    reason: str


def _mapping_pids(name: str) -> list[int]:
    """Pids whose memory maps /dev/shm/``name`` (the processes this user may see)."""
    needle = f"{_shm.SHM_DIR}/{name}"
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps", encoding="utf-8", errors="replace") as maps:
                if any(line.rstrip("\n").endswith(needle) or f"{needle} " in line for line in maps):
                    pids.append(int(entry))
        except OSError:  # gone, or another user's
            continue
    return pids


def _abandoned_retired(table: Any) -> bool:
    """Whether the segment was retired by a process that died before unlinking it.

    A retirer holds the mark for microseconds, dropping it again if it finds a
    user; a mark that lasts RETIRED_SETTLE_SECONDS with no live user is
    abandoned.
    """
    if not table.retired:
        return False
    time.sleep(RETIRED_SETTLE_SECONDS)
    return table.retired and not table.live_pids()


def _judge_native(name: str, dry_run: bool) -> CleanupEntry | None:
    """The verdict on a native segment of this layout, or None when it is not one."""
    from lptrack._native import open_observer

    try:
        table = open_observer(name)
    except (SegmentError, LayoutMismatchError, ValueError):
        return None
    try:
        live = table.live_pids(prune=not dry_run)
        if live:
            return CleanupEntry(name, False, False, f"in use by pids {', '.join(map(str, live))}")
        if table.registry_overflowed:
            return CleanupEntry(name, False, False, "its users cannot be known (registry overflowed)")
        if dry_run:
            return CleanupEntry(name, True, False, "no live process uses it")
        if not table._retire() and not _abandoned_retired(table):
            return CleanupEntry(name, False, False, "a process started using it (or another cleanup removes it)")
        removed = _shm.unlink_if_same(table._segment)
        return CleanupEntry(name, True, removed, "no live process used it")
    finally:
        table.close()


def _judge_other(name: str, dry_run: bool) -> CleanupEntry:
    path = os.path.join(_shm.SHM_DIR, name)
    stat = os.stat(path)
    if stat.st_uid != os.getuid():
        return CleanupEntry(name, False, False, "another user's segment (its users are invisible here)")
    age = time.time() - stat.st_mtime
    if age < GRACE_SECONDS:
        return CleanupEntry(name, False, False, f"created {age:.0f} s ago: may still be being set up")
    mapped = _mapping_pids(name)
    if mapped:
        return CleanupEntry(name, False, False, f"mapped by pids {', '.join(map(str, mapped))}")
    if dry_run:
        return CleanupEntry(name, True, False, "no registry, and no process maps it")
    os.unlink(path)
    return CleanupEntry(name, True, True, "no registry, and no process mapped it")


def cleanup(dry_run: bool = False, sessions: list[str] | None = None) -> list[CleanupEntry]:
    """Judge (and unless ``dry_run`` remove) every lptrack segment on this host, or
    those of ``sessions`` (session ids or segment names)."""
    names = _shm.list_segments()
    if sessions is not None:
        wanted = {name for s in sessions for name in _candidate_names(s)}
        names = [name for name in names if name in wanted]
    entries = []
    for name in names:
        try:
            entry = _judge_native(name, dry_run) or _judge_other(name, dry_run)
        except FileNotFoundError:
            continue  # removed meanwhile
        entries.append(entry)
    return entries


def format_cleanup(entries: list[CleanupEntry], dry_run: bool) -> str:
    if not entries:
        return "no lptrack segments"
    lines = []
    for entry in entries:
        if entry.removed:
            verdict = "removed"
        elif entry.removable:
            verdict = "would remove" if dry_run else "already gone"
        else:
            verdict = "kept"
        lines.append(f"{verdict:<13} {entry.name}: {entry.reason}")
    return "\n".join(lines)
