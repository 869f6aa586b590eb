"""The named experiments shipped with neuraterm, as TOML files in this folder."""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from neuraterm.core import config as config_mod
from neuraterm.core.errors import NeuratermError, did_you_mean


def names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".toml"))


def path_of(name_or_path: str) -> Path:
    """A shipped preset by name, or any TOML file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    item = resources.files(__name__) / f"{name_or_path}.toml"
    if not item.is_file():
        raise NeuratermError(f"unknown preset {name_or_path!r}{did_you_mean(name_or_path, names())}; "
                             f"run 'neuraterm presets' to list them")
    return Path(str(item))


def load(name_or_path: str) -> config_mod.Config:
    """A preset by name, a TOML file by path, or '-' for TOML on standard input (how the app hands an
    edited configuration to the training process it starts)."""
    if name_or_path == "-":
        return config_mod.parse_toml(sys.stdin.buffer.read(), "<stdin>")
    return config_mod.load_toml(path_of(name_or_path))
