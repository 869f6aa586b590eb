"""Which tests can see a mutant: each mutant runs only the tests that execute the statements it changed.

Per-test coverage of the mutated files is recorded once per module, on the unmutated tree (coverage.py,
one dynamic context per test); a mutant's changed lines come from comparing each mutated file with its
original text. This is what mutmut 3 does, and where in-process coverage is blind it is conservative:
- a changed line outside every function body (module level, a class body, a def's decorators, signature
  and defaults) runs at import, before any test: the whole selection runs;
- so does a statement that was executed outside any test (a module-level call at collection);
- a statement executed while a fixture wider than one test was set up counts for every test that uses
  the fixture: the first test pays for a module fixture, all of them use what it built;
- a test that started a process (the product through its CLI, a fork, multiprocessing, Ray) runs with
  every mutant: the child's lines are not measured.
A mutant whose statements no test executes is not tested at all: it survives, as it would have.

Used by scripts/mutation_server.py; `MUTATION_SELECT=0` in the test command's environment runs the whole
selection for every mutant (to compare verdicts both ways).
"""
from __future__ import annotations

import ast
import difflib
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Structure:
    """One file's statements as coverage.py sees them, and which lines run inside a function body."""
    first_line: dict[int, int]  # a line of a multi-line statement -> the statement's first line
    runtime: set[int]  # lines inside some function's body: executed by a call, not by the import

    @classmethod
    def of(cls, text: str, filename: str) -> Structure:
        from coverage.parser import PythonParser
        parser = PythonParser(text=text, filename=filename)
        parser.parse_source()
        lines = text.splitlines()
        first = {n: parser.first_line(n) for n in range(1, len(lines) + 1)}
        runtime: set[int] = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                body = node.body if isinstance(node.body, list) else [node.body]
                start, end = body[0].lineno, node.end_lineno
                # `def f(x=1): return x`: the header shares the body's first line, and runs at import
                if lines[start - 1][:body[0].col_offset].strip():
                    start += 1
                runtime.update(range(start, end + 1))
        return cls(first, runtime)


def changed_lines(original: str, current: str) -> set[int]:
    """The lines of `original` (1-based) that `current` replaced or removed, or next to an insertion."""
    a, b = original.splitlines(), current.splitlines()
    changed: set[int] = set()
    for op, i1, i2, _, _ in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("replace", "delete"):
            changed.update(range(i1 + 1, i2 + 1))
        elif op == "insert":
            changed.update(n for n in (i1, i1 + 1) if 1 <= n <= len(a))
    return changed


def time_limit(record: dict, tests: list[str]) -> int:
    """Seconds after which a run of `tests` counts as hung (killed): 10x what they took when recorded
    (under coverage, so slower than now), at least 20. cosmic-ray's own limit is 10x the whole selection."""
    seconds = dict(zip(record["tests"], record["seconds"]))
    return max(20, round(10 * (record["overhead"] + sum(seconds[t] for t in tests))))


def chosen_tests(record: dict, structures: dict[str, Structure], originals: dict[str, str],
                 tree: Path) -> tuple[list[str] | None, str]:
    """The tests to run for the mutant now on disk, in the recorded order, and why; None: all of them."""
    changed = {}
    for rel, original in originals.items():
        current = (tree / rel).read_text(encoding="utf-8")
        if current != original:
            changed[rel] = changed_lines(original, current)
    if not changed:
        return None, "no file differs from its original"
    chosen = set(record["always"])
    for rel, lines in changed.items():
        covers = record["files"].get(rel, {}).get("covers", {})
        outside = set(record["files"].get(rel, {}).get("outside", []))
        structure = structures[rel]
        for line in sorted(lines):
            if line not in structure.runtime:
                return None, f"{rel}:{line} runs at import"
            statement = structure.first_line.get(line, line)
            if statement in outside:
                return None, f"{rel}:{line} ran outside any test"
            chosen.update(covers.get(str(statement), []))
    tests = [t for i, t in enumerate(record["tests"]) if i in chosen]
    return tests, f"{len(tests)} of {len(record['tests'])} tests run {', '.join(f'{r}:{sorted(ls)}' for r, ls in changed.items())}"


class Only:
    """pytest plugin: keep the collected tests named, in collection order (the -k and the rest apply)."""

    def __init__(self, nodeids: list[str]):
        self.nodeids = set(nodeids)

    def pytest_collection_modifyitems(self, config, items):
        kept = [item for item in items if item.nodeid in self.nodeids]
        dropped = [item for item in items if item.nodeid not in self.nodeids]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept


OUTSIDE = ""  # coverage's context outside any test: collection, imports
FIXTURE = "fixture "  # prefix of the context of a wider-than-a-test fixture's setup


class Recorder:
    """pytest plugin: one coverage context per test (setup, call and teardown), one per wide fixture's
    setup, and who started a process."""

    def __init__(self, cov):
        self.cov = cov
        self.context = OUTSIDE
        self.tests: list[str] = []
        self.seconds: list[float] = []  # each test's time, setup and teardown included
        self.fixtures: dict[str, set[str]] = {}  # test -> the fixtures it uses (all of them, transitively)
        self.spawned: set[str] = set()  # contexts in which a process was started

    def switch(self, context: str) -> str:
        before, self.context = self.context, context
        self.cov.switch_context(context)
        return before

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.tests.append(item.nodeid)
        self.fixtures[item.nodeid] = set(getattr(item, "fixturenames", ()))
        self.switch(item.nodeid)
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds.append(time.monotonic() - started)
            self.switch(OUTSIDE)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        if fixturedef.scope == "function":
            yield
            return
        before = self.switch(FIXTURE + fixturedef.argname)
        try:
            yield
        finally:
            self.switch(before)

    def spawning(self, *_, **__):
        self.spawned.add(self.context)

    def tests_of(self, context: str) -> list[int]:
        """The tests (by index) that a line executed in `context` can affect."""
        if context == OUTSIDE:
            return []
        if context.startswith(FIXTURE):
            name = context[len(FIXTURE):]
            return [i for i, t in enumerate(self.tests) if name in self.fixtures[t]]
        return [i for i, t in enumerate(self.tests) if t == context]


def watch_processes(spawning) -> None:
    """Call `spawning()` whenever this process starts another (in the recording child only)."""
    import multiprocessing.process

    def wrap(owner, name):
        original = getattr(owner, name, None)
        if original is None:
            return

        def wrapper(*args, **kwargs):
            spawning()
            return original(*args, **kwargs)
        setattr(owner, name, wrapper)

    wrap(subprocess.Popen, "__init__")
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve"):
        wrap(os, name)
    wrap(multiprocessing.process.BaseProcess, "start")


def record(args: list[str], tree: Path, files: list[str], out: Path) -> int:
    """Run pytest `args` under coverage of `files` (relative to `tree`), write who covers what to `out`
    (JSON) and return pytest's exit code."""
    import coverage
    paths = {str((tree / f).resolve()): f for f in files}
    cov = coverage.Coverage(data_file=None, config_file=False, include=list(paths))
    recorder = Recorder(cov)
    watch_processes(recorder.spawning)
    started = time.monotonic()
    cov.start()
    try:
        code = int(pytest.main([*args, "-W", "ignore::pytest.PytestAssertRewriteWarning"], plugins=[recorder]))
    finally:
        cov.stop()
    data = cov.get_data()
    # what a run costs beyond its tests' own time: pytest's start, collection, the wide fixtures' teardown
    overhead = time.monotonic() - started - sum(recorder.seconds)
    result: dict = {"tests": recorder.tests, "seconds": recorder.seconds, "overhead": overhead, "files": {}}
    always: set[int] = set()
    for context in recorder.spawned:  # outside tests: pytest's plugins asking git for a tag, not the product
        always.update(recorder.tests_of(context))
    result["always"] = sorted(always)
    for measured in data.measured_files():
        rel = paths.get(str(Path(measured).resolve()))
        if rel is None:
            continue
        structure = Structure.of((tree / rel).read_text(encoding="utf-8"), str(tree / rel))
        covers: dict[int, set[int]] = {}
        outside: set[int] = set()
        for line, contexts in data.contexts_by_lineno(measured).items():
            statement = structure.first_line.get(line, line)
            for context in contexts:
                if context == OUTSIDE:
                    outside.add(statement)
                else:
                    covers.setdefault(statement, set()).update(recorder.tests_of(context))
        result["files"][rel] = {"covers": {str(s): sorted(t) for s, t in sorted(covers.items())},
                                "outside": sorted(outside)}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, out)
    return code
