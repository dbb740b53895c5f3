"""Creating and attaching ``multiprocessing.shared_memory`` segments safely.

Only the creating process registers a segment with the resource tracker: a
process that merely attaches must neither unlink the segment nor make the
tracker warn about a leak when it exits.  Python 3.13 has ``track=False``; on
3.10-3.12 the registration is suppressed while attaching.  (Never
``unregister`` from an attached process instead: a multiprocessing child shares
its parent's tracker, and that would drop the creator's entry.)
"""

from __future__ import annotations

import sys
import threading
from multiprocessing import resource_tracker, shared_memory

#: Prefix of every segment lptrack creates; ``lptrack cleanup`` looks for it.
SEGMENT_PREFIX = "lptrack_"

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
