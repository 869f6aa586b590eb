"""Downloads that cannot leave a bad file behind: write `name.part`, check the hash, then rename.

An error page saved as data is the classic failure (EMNIST's old address serves HTML); the
checksum is what catches it. Progress goes to a callback, so the engine needs no UI library.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

from neuraterm.core.errors import NeuratermError

Progress = Callable[[str, int, int], None]
# urllib (with http.client and ssl) is imported by `fetch`, the one function that downloads: a run on data
# that is already here never pays for it.


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, sha256: str | tuple[str, ...] | None = None, md5: str | None = None) -> None:
    """Raise with the file's name if it matches none of its published checksums."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            accepted = (expected,) if isinstance(expected, str) else tuple(expected)
            actual = file_digest(path, algorithm)
            if actual not in accepted:
                raise NeuratermError(f"{path}: {algorithm} {actual[:16]}... does not match the published "
                                     f"{accepted[0][:16]}... (corrupt or not the original file)")
            return


def fetch(urls: list[str], dest: Path, sha256: str | None = None, md5: str | None = None,
          progress: Progress | None = None, timeout: float = 30.0) -> Path:
    """Download the first mirror that works into `dest`, verified; raise listing what was tried."""
    import urllib.error
    import urllib.request
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(dest.name, done, total)
            verify(part, sha256, md5)
            os.replace(part, dest)
            return dest
        except (urllib.error.URLError, OSError, NeuratermError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
            part.unlink(missing_ok=True)
    raise NeuratermError(f"could not download {dest.name} ({'; '.join(errors)}); "
                         f"place the file at {dest} to use it offline")
