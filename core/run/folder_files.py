"""The one way into a model folder's files: no link the program did not make is ever followed.

A model folder travels (zipped, shared on NFS, copied from another machine), so its content is input,
like a tar archive: a name in it, or a symlink planted in it, must never make the program read, write,
truncate or delete a file outside it. Every path below the folder is opened one component at a time
with `dir_fd` and `O_NOFOLLOW` (the folder itself is taken as the user named it); a file is used only
when `fstat` says it is a regular file; names from files (a manifest's list) must be plain relative
names; deletions remove only regular files, never through a link; temporary files are created with
`O_CREAT|O_EXCL` under unpredictable names (`tempfile.mkstemp`) in the folder they are renamed in.

The links the program itself writes (`current`, `best`, the top-level `weights`...) are never opened
as links: their text is read (`os.readlink`) and used only when it has the exact shape the program
writes (see `checkpoint._checkpoint_number`).
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW
UMASK = os.umask(0o022)  # read once, at import, while no other thread can be creating files
os.umask(UMASK)


class Refused(OSError):
    """A path the folder's rules do not allow (a link, not a regular file, a name with `..`, too big)."""

    def __init__(self, path, why: str):
        super().__init__(errno.EPERM, why, str(path))
        self.why = why

    def __str__(self) -> str:
        return f"{self.filename}: {self.why}"


def plain_relative(rel) -> bool:
    """A name the program could have written: relative, `/`-separated, no `.`/`..`/empty parts, no NUL."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\0" in rel or "\\" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def _parts(rel: str, root: Path) -> list[str]:
    if rel in ("", "."):
        return []
    if not plain_relative(rel):
        raise Refused(Path(root) / rel, "not a plain relative name inside the folder")
    return rel.split("/")


def _refuse_link(exc: OSError, shown: Path) -> OSError:
    """ELOOP from O_NOFOLLOW (and ENOTDIR from a link where a folder was expected) said plainly."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return Refused(shown, "is a symbolic link or not a folder; links are not followed")
    return exc


def open_dir(root: Path, rel: str = "") -> int:
    """A descriptor of `root/rel`, each component below `root` a real folder (never a link)."""
    root = Path(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    shown = root
    try:
        for part in _parts(rel, root):
            shown = shown / part
            try:
                child = os.open(part, DIRECTORY, dir_fd=fd)
            except OSError as exc:
                raise _refuse_link(exc, shown) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(root: Path, rel: str, flags: int = os.O_RDONLY, mode: int = 0o644, regular: bool = True) -> int:
    """A descriptor of the file `root/rel`, never through a link; `regular` refuses a FIFO, a device or
    a folder (checked with `fstat` on what was opened, so nothing can be swapped in between)."""
    parts = _parts(rel, root)
    parent, name = "/".join(parts[:-1]), parts[-1]
    shown = Path(root) / rel
    dir_fd = open_dir(root, parent)
    try:
        try:
            fd = os.open(name, flags | NOFOLLOW | os.O_NONBLOCK, mode, dir_fd=dir_fd)
        except OSError as exc:
            raise _refuse_link(exc, shown) from None
    finally:
        os.close(dir_fd)
    if regular and not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused(shown, "not a regular file")
    os.set_blocking(fd, True)  # O_NONBLOCK only kept a FIFO from blocking the open
    return fd


def read_bytes(root: Path, rel: str, limit: int | None = None) -> bytes:
    """A regular file's bytes, at most `limit` of them (a bigger file is refused before it is read)."""
    fd = open_file(root, rel)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if limit is not None and size > limit:
            raise Refused(Path(root) / rel, f"{size:,} bytes, more than the {limit:,} such a file may hold")
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:  # it grew while it was read
        raise Refused(Path(root) / rel, f"more than the {limit:,} bytes such a file may hold")
    return data


def is_dir(root: Path, rel: str) -> bool:
    """Whether `root/rel` is a real folder reached without links."""
    try:
        os.close(open_dir(root, rel))
        return True
    except OSError:
        return False


def is_file(root: Path, rel: str) -> bool:
    """Whether `root/rel` is a regular file reached without links."""
    return _if_kind(root, rel, stat.S_ISREG)


def list_dir(root: Path, rel: str = "") -> list[tuple[str, str]]:
    """(name, kind) of each entry of a real folder: kind is 'file', 'dir', 'link' or 'other'."""
    fd = open_dir(root, rel)
    try:
        found = []
        for name in os.listdir(fd):
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except OSError:
                continue
            kind = "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else \
                "link" if stat.S_ISLNK(mode) else "other"
            found.append((name, kind))
        return found
    finally:
        os.close(fd)


def _if_kind(root: Path, rel: str, is_kind, then=None) -> bool:
    """Whether the entry `root/rel`, reached without links, is of the kind `is_kind(its lstat mode)` asks
    for; if it is, `then(name, dir_fd=...)` is done to it (a removal) and must succeed."""
    parts = _parts(rel, root)
    try:
        dir_fd = open_dir(root, "/".join(parts[:-1]))
    except OSError:
        return False
    try:
        if not is_kind(os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False).st_mode):
            return False
        if then is not None:
            then(parts[-1], dir_fd=dir_fd)
        return True
    except OSError:
        return False
    finally:
        os.close(dir_fd)


def remove_file(root: Path, rel: str) -> bool:
    """Delete `root/rel` if it is a regular file reached without links; anything else stays."""
    return _if_kind(root, rel, stat.S_ISREG, os.unlink)


def remove_link(root: Path, rel: str) -> bool:
    """Delete the symbolic link `root/rel` itself (a leftover of the program's own link switch)."""
    return _if_kind(root, rel, stat.S_ISLNK, os.unlink)


def remove_empty_dir(root: Path, rel: str) -> bool:
    """Delete the folder `root/rel` if it is empty and not a link."""
    return _if_kind(root, rel, stat.S_ISDIR, os.rmdir)


def remove_tree(root: Path, rel: str) -> None:
    """Delete a folder the program wrote (a temporary checkpoint): regular files and links in it are
    unlinked, never followed; folders are entered only when they are real folders."""
    for name, kind in list_dir(root, rel) if is_dir(root, rel) else []:
        child = f"{rel}/{name}"
        if kind == "dir":
            remove_tree(root, child)
        elif kind == "file":
            remove_file(root, child)
        elif kind == "link":
            remove_link(root, child)
    remove_empty_dir(root, rel)


def temporary(folder: Path, prefix: str) -> tuple[int, Path]:
    """A new file in `folder` under an unpredictable name (`O_CREAT|O_EXCL`, never a planted link)."""
    fd, name = tempfile.mkstemp(prefix=prefix, dir=folder)
    return fd, Path(name)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: a new temporary sibling (`<name>.tmp-XXXX`, created exclusively),
    fsynced, renamed over `path` (a reader never sees half of it; a failure, a full disk included,
    leaves no temporary file). A link at `path` is replaced, never written through."""
    path = Path(path)
    fd, tmp = temporary(path.parent, f"{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~UMASK)  # what open() would have given (mkstemp makes it 0600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
