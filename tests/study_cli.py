"""What the study tests share: the CLI as a subprocess, and a study's results.csv cut to the columns two
runs of one study must agree on (seconds per epoch are measured, so they differ)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path


def cli(*args, cwd=None, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "neuraterm", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "NO_COLOR": "1", **(env or {})})


def results_table(folder: Path, columns) -> list[dict]:
    with open(folder / "results.csv", newline="") as f:
        return [{k: row[k] for k in columns} for row in csv.DictReader(f)]
