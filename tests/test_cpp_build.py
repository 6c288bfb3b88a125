"""The run-time build of C++ kernels (actlab._cpp) when an earlier build was killed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from actlab import _cpp
    library = _cpp.CppLibrary("actlab_test_stale_lock", [Path(sys.argv[1])], cflags=["-O0"])
    print("loaded" if library.load() else library.error)
""")


def _build(tmp_path: Path, extensions: Path) -> subprocess.CompletedProcess:
    source = tmp_path / "answer.cpp"
    source.write_text("int actlab_test_answer() { return 42; }\n")
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(extensions))
    # a subprocess with a time limit: without the fix it waits for the stale lock forever
    return subprocess.run([sys.executable, "-c", SCRIPT, str(source)], env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_lock_left_by_a_killed_build_is_removed_instead_of_waited_for(tmp_path):
    extensions = tmp_path / "extensions"
    folder = extensions / "actlab_test_stale_lock"
    folder.mkdir(parents=True)
    (folder / "lock").touch()  # what torch leaves when its build is killed
    done = _build(tmp_path, extensions)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "loaded"
    assert not (folder / "lock").exists()
    assert _build(tmp_path, extensions).stdout.strip() == "loaded"  # and the cached build loads again
