"""Checkpoint directories appear whole or not at all: written next to the target, then renamed into place."""

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(out_dir: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(staging_dir)`, then replace `out_dir` with it (a rename on the same file system)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as staging:
        write(Path(staging))
        Path(staging).chmod(0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        Path(staging).rename(out_dir)
    return out_dir
