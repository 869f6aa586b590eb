import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.pop("NO_COLOR", None)

# CI installs every optional part the tests exercise (.ci/run: the [dev] extra with torch, numba, Ray,
# Pillow, textual-serve; tmux, g++, chromium, Fashion-MNIST from apt). There a skip is a test that did
# not run, and the bugs only it catches (optimizers, schedules and batch norm against PyTorch) would
# pass unseen: so under CI=true a skip fails, unless the test needs a GPU (marked `gpu`) or says why it
# may skip (`may_skip_in_ci`, for CUDA-toolkit checks).
STRICT = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _may_skip(item) -> bool:
    return item is not None and ("gpu" in item.keywords or item.get_closest_marker("may_skip_in_ci") is not None)


def _fail_skip(report, where: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"CI=true, yet {where} was skipped: {reason.removeprefix('Skipped: ')}. "
                       "CI must have every optional test dependency (.ci/run installs them); "
                       "only GPU tests may skip")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail") and not _may_skip(item):
        _fail_skip(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module-level `importorskip` skips the whole file at collection: the same rule applies."""
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped:
        _fail_skip(report, report.nodeid or str(collector.path))


def pytest_collection_modifyitems(config, items):
    try:
        from neuraterm.core.backend import select
        select("gpu")
        has_gpu = True
    except Exception:
        has_gpu = False
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip)
