"""The studies shipped with neuraterm (`neuraterm studies`), as study files in this folder."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from neuraterm.core.errors import NeuratermError, did_you_mean


def names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".toml"))


def path_of(name: str) -> Path:
    item = resources.files(__name__) / f"{name}.toml"
    if not item.is_file():
        raise NeuratermError(f"unknown study {name!r}{did_you_mean(name, names())}; "
                             f"run 'neuraterm studies' to list them")
    return Path(str(item))
