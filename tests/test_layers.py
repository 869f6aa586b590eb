"""The layers of the code as a contract: `lint-imports` (import-linter) checks pyproject.toml's
contracts on the package as it installs (core/, tui/ and presets/ inside neuraterm/), and a planted
violation makes it fail, so the check is known to bite."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _installed_layout(tmp_path: Path) -> Path:
    """The tree as the wheel lays it out, which is what import-linter walks."""
    pkg = tmp_path / "site" / "neuraterm"
    shutil.copytree(ROOT / "neuraterm", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("core", "tui", "presets"):
        shutil.copytree(ROOT / folder, pkg / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def _lint(tmp_path: Path, site: Path) -> subprocess.CompletedProcess:
    # lint-imports' own entry point, run by this interpreter (a venv may not have the script beside it)
    cmd = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
           "sys.argv[0] = 'lint-imports'; c()"]
    return subprocess.run([*cmd, str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})


def test_the_import_contract_holds(tmp_path):
    pkg = _installed_layout(tmp_path)
    result = _lint(tmp_path, pkg.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_a_planted_violation_breaks_the_contract(tmp_path):
    pkg = _installed_layout(tmp_path)
    nn = pkg / "core" / "nn" / "tensor.py"
    nn.write_text(nn.read_text() + "\n\ndef _planted():\n    from neuraterm.core.run import trainer  # noqa\n")
    result = _lint(tmp_path, pkg.parent)
    assert result.returncode != 0
    assert "neuraterm.core.nn is not allowed to import neuraterm.core.run" in result.stdout


def test_the_engine_importing_a_ui_package_breaks_the_contract(tmp_path):
    pkg = _installed_layout(tmp_path)
    (pkg / "core" / "metrics.py").write_text((pkg / "core" / "metrics.py").read_text() + "\nimport rich  # noqa\n")
    result = _lint(tmp_path, pkg.parent)
    assert result.returncode != 0 and "neuraterm.core is not allowed to import rich" in result.stdout
