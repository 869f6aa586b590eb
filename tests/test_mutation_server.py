"""The fast test command of mutation testing (scripts/mutation_server.py and its client) gives the same
verdicts as a plain `python -m pytest`, sees a mutant written in the same second as its original, and
kills a test run whose client was killed (cosmic-ray's timeout)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
ORIGINAL = "def double(x):\n    return 2 * x\n"
TESTS = '''import os, time
from doubling import double


def test_double():
    assert double(3) == 6


def test_hangs_when_asked():
    if os.environ.get("HANG_PID_FILE"):
        with open(os.environ["HANG_PID_FILE"] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(os.environ["HANG_PID_FILE"] + ".tmp", os.environ["HANG_PID_FILE"])
        time.sleep(120)
'''


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mutation") / "tree"
    (root / "tests").mkdir(parents=True)
    (root / "doubling.py").write_text(ORIGINAL)
    (root / "tests" / "test_doubling.py").write_text(TESTS)
    return root


@pytest.fixture(scope="module")
def server(tree):
    sock = tree.parent / "s.sock"
    log = tree.parent / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(SCRIPTS / "mutation_server.py"), str(sock), str(tree),
                                 "tests/test_doubling.py"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start in 60 s"
            time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


def fast(tree, sock, *args, env=None):
    return subprocess.run([sys.executable, "-S", str(SCRIPTS / "mutation_client.py"), str(sock), "-q",
                           "-p", "no:cacheprovider", *args], cwd=tree, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def plain(tree, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=tree,
                          capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def test_verdicts_match_plain_pytest_for_the_original_and_same_size_mutants(tree, server):
    source = tree / "doubling.py"
    assert fast(tree, server, "-x").returncode == 0
    # Same length as the original, written within the same second as the run before: a cached .pyc
    # validated by mtime and size would hide these mutants.
    for mutant, killed in [("2 * x", False), ("3 * x", True), ("x + x", False), ("x * x", True), ("2 + x", True)]:
        source.write_text(ORIGINAL.replace("2 * x", mutant))
        verdicts = fast(tree, server, "-x").returncode, plain(tree, "-x").returncode
        assert verdicts == ((1, 1) if killed else (0, 0)), (mutant, verdicts)
        source.write_text(ORIGINAL)
        assert fast(tree, server, "-x").returncode == 0, mutant


def test_the_test_run_writes_to_the_clients_streams(tree, server):
    run = fast(tree, server, "-k", "double")
    assert run.returncode == 0
    assert "1 passed, 1 deselected" in run.stdout
    assert fast(tree, server, "-k", "no_such_test").returncode == plain(tree, "-k", "no_such_test").returncode == 5


def test_a_killed_client_takes_its_test_run_with_it(tree, server, tmp_path):
    """The test run also gets the client's environment: HANG_PID_FILE reaches it."""
    pid_file = tmp_path / "hang.pid"
    client = subprocess.Popen([sys.executable, "-S", str(SCRIPTS / "mutation_client.py"), str(server), "-q",
                               "-p", "no:cacheprovider", "-k", "hangs"], cwd=tree,
                              env={**os.environ, "HANG_PID_FILE": str(pid_file)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.05)
    test_pid = int(pid_file.read_text())
    os.killpg(client.pid, signal.SIGKILL)  # what cosmic-ray does on a timeout
    client.wait()
    deadline = time.monotonic() + 10
    while alive(test_pid):
        assert time.monotonic() < deadline, "the test run outlived its client"
        time.sleep(0.05)
    # and the server still answers
    assert fast(tree, server, "-k", "double").returncode == 0


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_without_a_server_the_client_runs_pytest_itself(tree, tmp_path):
    assert fast(tree, tmp_path / "nothing.sock", "-k", "double").returncode == 0
    (tree / "doubling.py").write_text(ORIGINAL.replace("2 * x", "3 * x"))
    run = fast(tree, tmp_path / "nothing.sock", "-k", "double")
    (tree / "doubling.py").write_text(ORIGINAL)
    assert run.returncode == 1
    assert "no answer from the server" in run.stderr
