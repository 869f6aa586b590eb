"""A pytest that is already started, for mutation testing: one mutant's test run in ~1 s instead of 5-16 s.

Each of cosmic-ray's test runs used to start Python and import pytest, NumPy, hypothesis, torch and
Textual before the first test ran: almost all of a mutant's cost. This server does those imports once
(the third-party and standard-library modules the tree and its tests import; never `neuraterm`, never
the tests), then waits on a Unix socket. Per request (from scripts/mutation_client.py) it forks; the
child takes the client's working directory, environment and standard streams, imports `neuraterm` fresh
from disk (so it sees the mutant that cosmic-ray just wrote) and exits with `pytest.main(args)`'s code,
which the server hands back to the client. When the client goes away (cosmic-ray's timeout kills it),
the child and everything it started are killed.

Bytecode: cosmic-ray rewrites a file in place and puts it back, so a cached .pyc validated by mtime and
size could stand in for a mutant of the same size written in the same second. At start the tree's
`__pycache__` folders are removed and its sources compiled to *checked-hash* .pycs, which the import
system validates against the source's hash, never its mtime; a mutant never matches its original's hash.

Test selection (scripts/mutation_coverage.py): with `--mutate FILE ...` (relative to TREE) the server
reads those files' original text at start; a request whose environment has MUTATION_RECORD=1 runs its
tests under per-test coverage of them and keeps the result (SOCKET.tests.json); every later request
runs only the tests that execute the statements in which the files on disk differ from the originals.

    python scripts/mutation_server.py SOCKET TREE TEST_FILE ... [--mutate FILE ...]
    # TEST_FILEs: what to preload for
"""
from __future__ import annotations

import argparse
import ast
import compileall
import gc
import importlib
import json
import os
import py_compile
import selectors
import shutil
import signal
import socket
import sys
from pathlib import Path

import mutation_coverage

# Imported lazily by the product, and heavy or thread-starting at import: better in each child.
NOT_PRELOADED = {"neuraterm", "ray", "cupy", "pyarrow", "conftest", "tests"}


def imported_names(paths: list[Path], local: set[str]) -> list[str]:
    """Every absolute module name these files import (also inside functions), minus the local ones."""
    names: dict[str, None] = {}
    for path in paths:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module]
            else:
                continue
            for name in found:
                top = name.partition(".")[0]
                if top not in NOT_PRELOADED and top not in local:
                    names[name] = None
    return list(names)


def preload(tree: Path, test_files: list[str]) -> list[str]:
    """Import what the tests and the product will need, so that no child pays for it again."""
    tests = tree / "tests"
    local = {p.stem for p in tests.glob("*.py")} | {p.name for p in tests.iterdir() if p.is_dir()}
    sources = [tree / f for f in test_files] + [tests / "conftest.py"] + sorted(tests.glob("*.py"))
    sources += [p for part in ("core", "tui") for p in sorted((tree / part).rglob("*.py"))]
    sources += sorted(tree.glob("*.py"))
    # pytest's plugins (hypothesis, asyncio, ...) load from entry points at each pytest.main.
    from importlib.metadata import entry_points
    plugins = [ep.value.partition(":")[0] for ep in entry_points(group="pytest11")]
    loaded = []
    for name in ["pytest", *plugins, *imported_names(sources, local)]:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except BaseException:  # an optional dependency that is missing: the child will say so
            pass
    return loaded


def fresh_bytecode(tree: Path) -> None:
    """Checked-hash .pycs for every source: a stale one can never stand in for a mutant.

    The import system rewrites a checked-hash .pyc whose hash does not match as a checked-hash .pyc, so
    the children may write bytecode (pytest's rewritten tests are cached too, by mtime: tests are never
    mutated)."""
    for cache in tree.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    compileall.compile_dir(tree, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    sys.dont_write_bytecode = False


def quick_hypothesis() -> None:
    """A failing example kills the mutant as it is: no shrinking it (seconds per killed mutant), and no
    deadline, which a loaded machine misses (a false kill). Tests' own @settings still apply."""
    from hypothesis import Phase, settings
    settings.register_profile("mutation", deadline=None,
                              phases=[p for p in Phase if p.name not in ("shrink", "explain")])
    settings.load_profile("mutation")


class Selection:
    """The mutated files' original text and statements, and the recorded coverage of the tests."""

    def __init__(self, tree: Path, files: list[str], record_path: Path, test_files: list[str] = ()):
        self.tree = tree
        self.test_files = set(test_files)
        self.chosen: list[str] | None = None  # the tests this child runs (None: all of them)
        self.originals = {f: (tree / f).read_text(encoding="utf-8") for f in files}
        self.structures = {f: mutation_coverage.Structure.of(text, str(tree / f))
                           for f, text in self.originals.items()}
        self.record_path = record_path
        self.record: dict | None = None
        record_path.unlink(missing_ok=True)

    def refresh(self) -> None:
        """Load the recording once the recording run has written it (before forking: children inherit it)."""
        if self.record is None and self.originals and self.record_path.exists():
            self.record = json.loads(self.record_path.read_text(encoding="utf-8"))

    def plugins(self, request: dict) -> list | None:
        """pytest plugins that keep only the tests this mutant needs; None: no test needs to run."""
        if self.record is None or request["env"].get("MUTATION_SELECT") == "0":
            return []
        tests, why = mutation_coverage.chosen_tests(self.record, self.structures, self.originals, self.tree)
        print(f"mutation server: {why}" if tests is not None else f"mutation server: every test ({why})",
              flush=True)
        if tests is None:
            return []
        self.chosen = tests
        if tests:  # a hung mutant is killed in seconds, not at 10x the whole selection's time
            signal.alarm(mutation_coverage.time_limit(self.record, tests))
        return [mutation_coverage.Only(tests)] if tests else None

    def narrowed(self, args: list[str]) -> list[str]:
        """pytest's arguments without the module's test files that hold none of the chosen tests: their
        collection (importing them, parametrizing hundreds of cases) is a fixed cost of every mutant."""
        if not self.chosen:
            return args
        holding = {test.split("::", 1)[0] for test in self.chosen}
        return [a for a in args if a not in self.test_files or a in holding]


def run_child(conn: socket.socket, request: dict, fds: list[int], selection: Selection) -> None:
    """In the forked child: become the client's pytest, and never return."""
    code = 3
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        conn.close()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path.insert(0, request["cwd"])  # as `python -m pytest` run there would have it
        import pytest
        if "hypothesis" in sys.modules:
            quick_hypothesis()
        if request["env"].get("MUTATION_RECORD") == "1" and selection.originals:
            code = mutation_coverage.record(request["args"], selection.tree, list(selection.originals),
                                            selection.record_path)
            return
        plugins = selection.plugins(request)
        if plugins is None:  # no test executes the changed statements: the mutant survives untested
            code = 0
            return
        # The preloaded plugins were imported before pytest could rewrite their asserts: it says so.
        code = int(pytest.main([*selection.narrowed(request["args"]), "-W",
                                "ignore::pytest.PytestAssertRewriteWarning"], plugins=plugins))
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: str, selection: Selection) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    listener.bind(path)
    listener.listen(8)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    jobs: dict[int, tuple[socket.socket, int]] = {}  # pidfd -> (client connection, child pid)

    def stop(*_):  # the script is done with this module, or was interrupted: no test run outlives us
        for _, pid in jobs.values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"mutation server {os.getpid()} ready on {path}", flush=True)
    while True:
        for key, _ in selector.select():
            if key.data == "accept":
                conn, _ = listener.accept()
                try:
                    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                    request = json.loads(message)
                except (OSError, ValueError):
                    conn.close()
                    continue
                selection.refresh()
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    run_child(conn, request, fds, selection)
                for fd in fds:
                    os.close(fd)
                try:
                    os.setpgid(pid, pid)
                except OSError:
                    pass
                pidfd = os.pidfd_open(pid)
                jobs[pidfd] = (conn, pid)
                selector.register(pidfd, selectors.EVENT_READ, ("done", pidfd))
                selector.register(conn, selectors.EVENT_READ, ("gone", pidfd))
                continue
            what, pidfd = key.data
            if pidfd not in jobs:
                continue
            conn, pid = jobs.pop(pidfd)
            selector.unregister(pidfd)
            selector.unregister(conn)
            if what == "gone":  # the client was killed (timeout) or quit: so is its test run
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            _, status = os.waitpid(pid, 0)
            os.close(pidfd)
            try:  # what the test run started and left behind (its own time limit cut it short)
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            code = os.waitstatus_to_exitcode(status)
            code = code if 0 <= code < 256 else 1  # killed by a signal: a failed run
            try:
                conn.sendall(bytes([code]))
            except OSError:
                pass
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="a pytest already started, for mutation testing")
    parser.add_argument("socket")
    parser.add_argument("tree")
    parser.add_argument("test_files", nargs="*")
    parser.add_argument("--mutate", nargs="+", default=[], help="the files mutants are made of (test selection)")
    options = parser.parse_args()
    path, tree, test_files = options.socket, options.tree, options.test_files
    tree_path = Path(tree).resolve()
    selection = Selection(tree_path, options.mutate, Path(path + ".tests.json"), test_files)
    # Not the scripts folder on sys.path: a child's path is the tree's, as for `python -m pytest`.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
    fresh_bytecode(tree_path)
    loaded = preload(tree_path, test_files)
    leaked = [m for m in sys.modules if m.partition(".")[0] in ("neuraterm", "tests", "conftest")]
    if leaked:  # a preloaded module imported the product: the children would test that copy, not the mutant
        sys.exit(f"mutation server: preloading imported {', '.join(sorted(leaked))}")
    print(f"mutation server: preloaded {len(loaded)} modules", flush=True)
    # Out of the collector's sight: pytest collects garbage five times a run, 0.1 s each over this heap.
    gc.collect()
    gc.freeze()
    serve(path, selection)


if __name__ == "__main__":
    main()
