"""What users install is what we test: build the wheel, install it (not editable) into a fresh virtual
environment, import every module of the source tree from it, find every data file in it, and drive the
installed `neuraterm` app in a real terminal until its charts show."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> installed package, as setup.py maps them.
TREES = {"neuraterm": "neuraterm", "core": "neuraterm/core", "tui": "neuraterm/tui", "presets": "neuraterm/presets"}
DATA_SUFFIXES = (".tcss", ".cu", ".npz", ".toml")


def source_files(suffixes) -> list[tuple[Path, str]]:
    """(source path, installed relative path) for every file of the tree with one of `suffixes`."""
    found = []
    for folder, installed in TREES.items():
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in suffixes and "__pycache__" not in path.parts:
                found.append((path, f"{installed}/{path.relative_to(ROOT / folder).as_posix()}"))
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtual environment holding the wheel built from this tree; its dependencies come from the
    environment running the tests (--system-site-packages), neuraterm itself only from the wheel."""
    work = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(work / "dist"), str(ROOT)], capture_output=True, text=True, cwd=work)
    assert build.returncode == 0, build.stderr
    (wheel,) = (work / "dist").glob("neuraterm-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    return venv, Path(site)


def test_every_module_imports_from_the_installed_copy(installed):
    venv, site = installed
    modules = [rel[:-3].replace("/", ".").removesuffix(".__init__") for _, rel in source_files((".py",))
               if not rel.endswith("__main__.py")]  # importing __main__ runs the program
    assert "neuraterm.tui.screens.setup" in modules and "neuraterm.core.fused.step" in modules
    script = "import importlib\nfor name in %r:\n    print(name, importlib.import_module(name).__file__)\n" % modules
    result = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True,
                            cwd=venv)  # not the checkout, so nothing can come from the source tree
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        name, where = line.split(" ", 1)
        assert Path(where).is_relative_to(site), f"{name} imported from {where}, not from the wheel"
    assert len(result.stdout.splitlines()) == len(modules)


def test_every_data_file_is_in_the_wheel(installed):
    _, site = installed
    files = source_files(DATA_SUFFIXES)
    assert {p.suffix for p, _ in files} == set(DATA_SUFFIXES)
    missing = [rel for _, rel in files if not (site / rel).is_file()]
    assert not missing, f"not installed: {missing}"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_installed_app_trains_in_a_real_terminal(installed, tmp_path):
    venv, _ = installed
    session = f"ntwheel{os.getpid()}"
    command = f"cd {tmp_path} && {venv / 'bin' / 'neuraterm'}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command], check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    def wait_for(text: str, seconds: float) -> str:
        deadline = time.time() + seconds
        while text not in (shown := screen()) and time.time() < deadline:
            time.sleep(0.3)
        return shown

    try:
        assert "ready: press" in wait_for("ready: press", 30), screen()
        subprocess.run(["tmux", "send-keys", "-t", session, "t"], check=True)
        shown = wait_for("test acc", 120)
        assert "test acc" in shown and "loss" in shown and "accuracy %" in shown, shown
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert list((tmp_path / "runs").iterdir())


# -- the processes neuraterm starts, from a clone ------------------------------------------------
# The README's first command is typed at the top of a clone, whose `neuraterm/` folder (without `core`
# or `tui`, which install from folders of their own) is first on sys.path under `python -m`. An editable
# install (as in CI) happens to map `neuraterm.core` anyway, so the folder here is one whose `neuraterm/`
# cannot be imported at all: whatever is installed, a child that imports from its working directory fails.
STUDY = ('name = "two"\npreset = "quick"\n[set]\n"data.limit" = 600\n"model.hidden" = [8]\n"train.epochs" = 1\n'
         '[grid]\n"optimizer.lr" = [0.01, 0.02]\n')


@pytest.fixture
def shadowed(tmp_path) -> Path:
    """A working directory holding a `neuraterm/` folder that is not the installed package."""
    folder = tmp_path / "clone"
    (folder / "neuraterm").mkdir(parents=True)
    (folder / "neuraterm" / "__init__.py").write_text('raise ImportError("the clone\'s neuraterm/, not the installed one")\n')
    return folder


def in_venv(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})


def test_python_dash_m_imports_the_working_directorys_neuraterm(installed, shadowed, tmp_path):
    """The trap the children's command line (core/run/child.py) avoids."""
    venv, _ = installed
    done = in_venv([venv / "bin" / "python", "-m", "neuraterm", "train", "--preset", "quick", "--out",
                    tmp_path / "r"], shadowed)
    assert done.returncode != 0 and "the clone's neuraterm/, not the installed one" in done.stderr
    assert not (tmp_path / "r").exists()


def test_a_run_the_app_starts_from_a_clone_trains(installed, shadowed, tmp_path):
    venv, _ = installed
    script = ("import os, sys\nfrom pathlib import Path\nfrom neuraterm.core import config\n"
              "from neuraterm.tui.service import TrainingService\n"
              f"out = Path({str(tmp_path)!r})\nos.chdir({str(shadowed)!r})\n"
              "c = config.Config()\nc.train.epochs, c.data.limit = 1, 600\n"
              "launched = TrainingService(runs_root=out).launch(c, out / 'r')\n"
              "code = launched.process.wait(timeout=300)\nprint(launched.failure())\nsys.exit(code)\n")
    done = in_venv([venv / "bin" / "python", "-c", script], tmp_path)  # the script itself imports from elsewhere
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "r" / "current" / "weights").is_dir()


def test_a_study_started_from_a_clone_trains_its_members(installed, shadowed, tmp_path):
    venv, _ = installed
    (tmp_path / "two.toml").write_text(STUDY)
    done = in_venv([venv / "bin" / "neuraterm", "study", tmp_path / "two.toml", "--jobs", "2", "--out",
                    tmp_path / "two"], shadowed)
    assert done.returncode == 0, done.stderr
    for member in ("lr-0.01", "lr-0.02"):
        assert (tmp_path / "two" / member / "current" / "weights").is_dir(), member


def test_a_childs_help_names_the_command(installed, shadowed):
    from neuraterm.core.run import child
    venv, _ = installed
    done = in_venv([venv / "bin" / "python", "-c", child.LAUNCH, "--help"], shadowed)
    assert done.returncode == 0 and done.stdout.startswith("Usage: neuraterm"), done.stdout[:200] + done.stderr
