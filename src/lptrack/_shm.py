"""Creating and attaching ``multiprocessing.shared_memory`` segments safely.

Only the creating process registers a segment with the resource tracker: a
process that merely attaches must neither unlink the segment nor make the
tracker warn about a leak when it exits.  Python 3.13 has ``track=False``; on
3.10-3.12 the registration is suppressed while attaching.  (Never
``unregister`` from an attached process instead: a multiprocessing child shares
its parent's tracker, and that would drop the creator's entry.)
"""

from __future__ import annotations

import os
import sys
import threading
from multiprocessing import resource_tracker, shared_memory

#: Prefix of every segment lptrack creates; ``lptrack cleanup`` looks for it.
SEGMENT_PREFIX = "lptrack_"
#: Where Linux keeps POSIX shared memory (``shm_open`` names are files here).
SHM_DIR = "/dev/shm"

_register_patch_lock = threading.Lock()


def segment_name(session_id: str, kind: str = "") -> str:
    """The /dev/shm name of a session's segment (``kind`` separates engines)."""
    return f"{SEGMENT_PREFIX}{kind}{session_id}"


def create_segment(name: str, size: int) -> shared_memory.SharedMemory:
    """Create a new zero-filled segment; FileExistsError if the name is taken."""
    return shared_memory.SharedMemory(name=name, create=True, size=size)


def attach_segment(name: str) -> shared_memory.SharedMemory:
    """Attach to an existing segment without registering it with the resource tracker.

    FileNotFoundError if it does not exist.
    """
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, create=False, track=False)
    with _register_patch_lock:
        original = resource_tracker.register

        def register_except_shared_memory(resource_name: str, rtype: str) -> None:
            if rtype != "shared_memory":
                original(resource_name, rtype)

        resource_tracker.register = register_except_shared_memory
        try:
            return shared_memory.SharedMemory(name=name, create=False)
        finally:
            resource_tracker.register = original


def close_segment(segment: shared_memory.SharedMemory) -> None:
    """Unmap ``segment``; tolerate views that are still exported (the mapping then lives on)."""
    try:
        segment.close()
    except BufferError:
        # numpy views of the buffer are still alive somewhere; the mapping is
        # released when the last of them goes.
        pass


def unlink_segment(segment: shared_memory.SharedMemory) -> None:
    """Remove the segment's name (creator only); the creator's tracker entry goes with it."""
    try:
        segment.unlink()
    except FileNotFoundError:
        pass


def check_allocatable(nbytes: int, *, shared: bool) -> None:
    """ValueError unless ``nbytes`` can be allocated now, checked before allocating.

    A shared segment lives in the tmpfs at SHM_DIR: a size beyond its free
    space would be created sparse and SIGBUS the process that first touches the
    missing pages, so refuse it here instead.  Private memory is checked
    against the memory the kernel reports available.
    """
    if shared:
        stats = os.statvfs(SHM_DIR)
        available, where = stats.f_bavail * stats.f_frsize, f"bytes are free in {SHM_DIR}"
    else:
        available, where = _available_memory(), "bytes of memory are available"
    if nbytes > available:
        raise ValueError(f"the pool needs {nbytes} bytes but only {available} {where}")


def _available_memory() -> int:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def unlink_if_same(segment: shared_memory.SharedMemory) -> bool:
    """Remove ``segment``'s name if the name still refers to this very segment.

    For a process that did not create it (reaping a stale segment): compares
    inodes, so a segment re-created under the name meanwhile is left alone,
    and bypasses the resource tracker, which never registered it here.
    """
    path = os.path.join(SHM_DIR, segment.name.lstrip("/"))
    try:
        if os.stat(path).st_ino != os.fstat(segment._fd).st_ino:
            return False
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def list_segments() -> list[str]:
    """Names of every lptrack segment on this host (any engine, any user)."""
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if name.startswith(SEGMENT_PREFIX))
