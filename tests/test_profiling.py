"""`py-spy record --native` on `lptrack bench` names our C and Cython frames.

The build keeps debug info (RelWithDebInfo, not stripped) and Cython emits
line directives, so a native profile of the main job shows functions of
csrc/ and of the Cython module with file:line, as the README promises.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

C_FRAME = re.compile(r"(\w+) \((?:[^;()]*/)?(lpt_\w+\.c):(\d+)\)")
CYTHON_FRAME = re.compile(r"(\w+) \((?:[^;()]*/)?(_core\.pyx):(\d+)\)")


def test_native_profile_names_c_and_cython_frames(tmp_path: Path) -> None:
    beside_python = Path(sys.executable).with_name("py-spy")  # the test extra's, in this venv
    py_spy = str(beside_python) if beside_python.exists() else shutil.which("py-spy")
    assert py_spy, "py-spy is part of the test extra: pip install '.[test]'"
    profile = tmp_path / "profile.txt"
    command = [
        py_spy, "record", "--native", "--rate", "100", "--format", "raw", "-o", str(profile), "--",
        sys.executable, "-m", "lptrack", "bench", "--quick", "--algorithms", "lp-native",
        "--episodes-per-epoch", "200000",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    frames = profile.read_text()
    c_functions = {m.group(1) for m in C_FRAME.finditer(frames)}
    cython_functions = {m.group(1) for m in CYTHON_FRAME.finditer(frames)}
    assert c_functions, "no frame of csrc/ with file:line in the native profile"
    assert cython_functions, "no frame of _core.pyx with file:line in the native profile"
    # The hot path itself must be visible, not just start-up code.
    assert any(name.startswith("lpt_") for name in c_functions), sorted(c_functions)
