import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.pop("NO_COLOR", None)


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
