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


# Test selection: the server records which test executes which statement of the mutated file, and a
# mutant runs only the tests that execute the statements it changed.
SHAPES = """SIDES = 4


def square(x):
    return x * x


def cube(x):
    return (x
            * x * x)


def unused(x):
    return -x
"""
SHAPE_TESTS = """from shapes import SIDES, cube, square


def test_square():
    assert square(3) == 9


def test_cube():
    assert cube(2) == 8


def test_sides():
    assert SIDES == 4
"""
# Started processes are not measured: a test that starts one runs with every mutant.
SPAWNING_TEST = """import subprocess, sys


def test_unused_in_a_process():
    subprocess.run([sys.executable, "-c", "import shapes; assert shapes.unused(2) == -2"], check=True)
"""


@pytest.fixture
def selecting(tmp_path):
    """A tree whose shapes.py is mutated, and a server started with --mutate; yields (tree, socket)."""
    servers = []

    def start(*test_sources):
        root = tmp_path / f"tree{len(servers)}"
        (root / "tests").mkdir(parents=True)
        (root / "shapes.py").write_text(SHAPES)
        for n, source in enumerate(test_sources):
            (root / "tests" / f"test_shapes{n}.py").write_text(source)
        sock, log = root.parent / f"s{len(servers)}.sock", root.parent / f"server{len(servers)}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, str(SCRIPTS / "mutation_server.py"), str(sock), str(root),
                                     *[f"tests/test_shapes{n}.py" for n in range(len(test_sources))],
                                     "--mutate", "shapes.py"],
                                    stdout=out, stderr=subprocess.STDOUT)
        servers.append(proc)
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start in 60 s"
            time.sleep(0.05)
        recording = fast(root, sock, "-x", "-p", "no:randomly", env={"MUTATION_RECORD": "1"})
        assert recording.returncode == 0, recording.stdout + recording.stderr
        return root, sock

    yield start
    for proc in servers:
        proc.terminate()
        proc.wait(10)


def mutated(tree, sock, original, mutant, *args, **env):
    source = tree / "shapes.py"
    assert original in SHAPES
    source.write_text(SHAPES.replace(original, mutant))
    try:
        return fast(tree, sock, "-x", "-p", "no:randomly", *args, env=env)
    finally:
        source.write_text(SHAPES)


def test_a_mutant_runs_only_the_tests_that_execute_its_statement(selecting):
    tree, sock = selecting(SHAPE_TESTS)
    # the second line of cube's two-line statement: the statement's test alone runs, and kills it
    run = mutated(tree, sock, "* x * x)", "* x + x)")
    assert run.returncode == 1
    assert "1 of 3 tests run" in run.stdout and "1 failed, 2 deselected" in run.stdout, run.stdout
    # the same mutant with selection off: every test, in order (-x stops at the first failure)
    run = mutated(tree, sock, "* x * x)", "* x + x)", MUTATION_SELECT="0")
    assert run.returncode == 1 and "1 failed, 1 passed" in run.stdout, run.stdout
    # a line no test executes: not run at all, and survives
    run = mutated(tree, sock, "return -x", "return +x")
    assert run.returncode == 0
    assert "0 of 3 tests run" in run.stdout and "passed" not in run.stdout, run.stdout
    # a line executed at import (module level; a def's signature likewise): every test runs
    for original, mutant in [("SIDES = 4", "SIDES = 5"), ("def square(x):", "def square(x=1):")]:
        run = mutated(tree, sock, original, mutant)
        assert "every test" in run.stdout and "runs at import" in run.stdout, run.stdout
    assert "1 failed, 2 passed" in mutated(tree, sock, "SIDES = 4", "SIDES = 5").stdout
    # the unmutated tree runs everything
    run = fast(tree, sock, "-x", "-p", "no:randomly")
    assert run.returncode == 0 and "3 passed" in run.stdout, run.stdout


def test_a_test_that_starts_a_process_runs_with_every_mutant(selecting):
    tree, sock = selecting(SHAPE_TESTS + SPAWNING_TEST)
    run = mutated(tree, sock, "return -x", "return +x")  # executed only in the test's child process
    assert run.returncode == 1
    assert "1 of 4 tests run" in run.stdout and "1 failed, 3 deselected" in run.stdout, run.stdout
    run = mutated(tree, sock, "return x * x", "return x + x")  # square's test, and the process's test
    assert "2 of 4 tests run" in run.stdout, run.stdout


def test_a_test_file_that_holds_none_of_the_chosen_tests_is_not_collected(selecting):
    """Collecting a file is a fixed cost of every mutant: only the files of the chosen tests are given to
    pytest (the second file here would fail its collection)."""
    tree, sock = selecting(SHAPE_TESTS, "import os\nassert os.environ.get('COLLECT_ME') != '0'\n\n"
                                        "def test_other():\n    assert True\n")
    files = ("tests/test_shapes0.py", "tests/test_shapes1.py")
    run = mutated(tree, sock, "* x * x)", "* x + x)", *files, COLLECT_ME="0")
    assert run.returncode == 1 and "1 of 4 tests run" in run.stdout, run.stdout
    assert "1 failed, 2 deselected" in run.stdout and "test_shapes1" not in run.stdout, run.stdout
    run = mutated(tree, sock, "* x * x)", "* x + x)", *files, COLLECT_ME="0", MUTATION_SELECT="0")
    assert run.returncode != 0 and "ERROR collecting tests/test_shapes1.py" in run.stdout, run.stdout


def test_the_shards_of_a_session_split_its_mutants_between_them(tmp_path):
    """MUTATION_SHARDS: each shard's session keeps every Nth mutant in one fixed order (the same when
    resumed), so the shards share none and together hold them all."""
    pytest.importorskip("cosmic_ray")
    import sqlite3
    (tmp_path / "ops.py").write_text("def f(a, b):\n    if a < b and a > 0:\n        return a + b * 2 - 1\n"
                                     "    return a / b if b != 0 else -1\n")
    (tmp_path / "cr.toml").write_text('[cosmic-ray]\nmodule-path = "ops.py"\ntimeout = 10\nexcluded-modules = []\n'
                                      'test-command = "true"\n[cosmic-ray.distributor]\nname = "local"\n')
    cosmic_ray = [sys.executable, "-c", "import sys; from cosmic_ray.cli import main; sys.exit(main())"]
    subprocess.run([*cosmic_ray, "init", "cr.toml", "all.sqlite"], cwd=tmp_path, check=True, capture_output=True)

    def kept(session):
        db = sqlite3.connect(session)
        skipped = {j for (j,) in db.execute("select job_id from work_results where worker_outcome = 'SKIPPED'")}
        return {j for (j,) in db.execute("select job_id from work_items")} - skipped
    everything = kept(tmp_path / "all.sqlite")
    shards = []
    for k in (1, 2, 3):
        session = tmp_path / f"s{k}.sqlite"
        session.write_bytes((tmp_path / "all.sqlite").read_bytes())
        for _ in range(2):  # a resumed session runs the split again: the same shard
            subprocess.run([sys.executable, str(SCRIPTS / "mutation_sample.py"), str(session), "--shard", str(k), "3"],
                           check=True, capture_output=True)
        shards.append(kept(session))
    assert len(everything) > 20
    assert set().union(*shards) == everything and sum(map(len, shards)) == len(everything)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
