"""Model folders written before core/ moved into wings (kept as a fixture, written by commit 69be4c2)
load, evaluate and resume unchanged: the move changed module paths, never the folder format."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from neuraterm.core.run import checkpoint

FIXTURE = Path(__file__).parent / "fixtures" / "quick-before-wings"
EXPECTED = json.loads((Path(__file__).parent / "fixtures" / "quick-before-wings.json").read_text())


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "quick-before-wings"
    shutil.copytree(FIXTURE, run, symlinks=True)
    return run


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "neuraterm", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_an_old_folder_loads_and_evaluates(tmp_path):
    run = _copy(tmp_path)
    snap = checkpoint.load(run)
    assert snap.epoch == 3 and len(snap.history) == 3 and snap.config.model.hidden == [16]
    result = _cli("eval", run)
    assert result.returncode == 0, result.stderr
    assert f"{100 * EXPECTED['test_accuracy_at_3']:.2f}%" in result.stdout


def test_an_old_folder_resumes_to_the_same_bits_the_old_code_reached(tmp_path):
    run = _copy(tmp_path)
    result = _cli("resume", run, "--epochs", 5)
    assert result.returncode == 0, result.stderr
    got = {name: hashlib.sha256(np.load(run / name, allow_pickle=False).tobytes()).hexdigest()
           for name in EXPECTED["resume_to_5_sha256"]}
    assert got == EXPECTED["resume_to_5_sha256"]
    report = json.loads((run / "report.json").read_text())
    assert report["test_accuracy"] == EXPECTED["resume_to_5_test_accuracy"]
