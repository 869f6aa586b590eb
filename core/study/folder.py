"""A study on disk, and what a driver or a viewer does with one member of it.

    studies/<study>/
        study.toml            the resolved study (every override included): `neuraterm study <folder>`
                              resumes it, `--results-only` re-draws its results from it
        .lock                 held by the one driver running the study (`neuraterm study`)
        configs/<member>.toml each member's complete config, what its `train` reads
        logs/<member>.log     each member process's output (its one-line error, when it failed)
        <member>/             an ordinary model folder: eval, resume, export and watch work on it
        results.csv results.md figures/
        pruned.txt            members that Ray Tune's ASHA stopped early (never resumed)
        pbt/                  a PBT study's schedule (`pbt/state.json`) and the folders its exploits
                              replaced (`pbt/replaced/<member>-e<epoch>/`), see `core/study/pbt.py`

A member's state is read from its folder (`runs.describe`), so any process can tell it: the driver,
the app's Study screen, a second terminal. A member runs as its own `neuraterm train`/`resume`
process, so its lock, event log, commands and signals are exactly those of any run.
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from neuraterm.core.run import checkpoint, child, commands, folder_files, status as runs
from neuraterm.core import config as config_mod
from neuraterm.core.study import spec as study_mod
from neuraterm.core.errors import NeuratermError
from neuraterm.core.run.lock import WriterLock

CONFIGS, LOGS, FIGURES, PRUNED = "configs", "logs", "figures", "pruned.txt"
# What a member can be. Done states are never started again by a driver.
STATES = ("waiting", "running", "paused", "finished", "diverged", "failed", "interrupted", "pruned", "damaged")
DONE = ("finished", "diverged", "failed", "pruned")
RETRY_NOTE = "; retrying from epoch "  # how the Ray driver's note in a member's log says it runs the member again


@dataclass
class MemberState:
    member: study_mod.Member
    path: Path  # the member's model folder
    state: str  # one of STATES, or "retrying" (Ray runs the member again after a failure, see `retrying`)
    info: runs.RunInfo  # what `neuraterm runs` says about the folder (history, metrics, holder)
    note: str = ""  # why it is retrying, as the driver wrote it ("its node 1a2b3c4d was lost; retrying from epoch 4")

    @property
    def name(self) -> str:
        return self.member.name


class StudyFolder:
    """`StudyFolder.create(study)` for a driver; `StudyFolder.open(path)` for anyone who looks."""

    def __init__(self, path: Path, study: study_mod.Study, members: list[study_mod.Member]):
        self.path, self.study, self.members = Path(path), study, members
        self.replanned: list[str] = []  # what `create` changed in a folder where no member had started
        self._by_name = {m.name: m for m in members}

    # -- creating and opening ------------------------------------------------------------------
    @classmethod
    def create(cls, study: study_mod.Study, path: Path | None = None) -> "StudyFolder":
        """The folder for `study` (default `studies/<name>`): made and filled on the first run; on a
        later run it must hold the same study, or a changed study would mix two experiments."""
        path = Path(path) if path is not None else Path("studies") / study.name
        copy = path / study_mod.STUDY_FILE
        if path.exists() and not path.is_dir():
            raise NeuratermError(f"{path}: exists and is not a folder")
        replan = False
        if copy.is_file():
            saved = study_mod.load(str(path))
            changed = study_mod.difference_lines(saved, study)
            if changed:
                started = started_members(path)
                if started or _driven(path):
                    why = (f"{len(started)} of its members started ({', '.join(started[:3])}"
                           f"{', ...' if len(started) > 3 else ''})" if started else "a driver is running it")
                    raise NeuratermError(f"{path} holds a study that differs from this one in {'; '.join(changed)}; "
                                         f"{why}, so it is kept as it is: run 'neuraterm study {path}' to continue "
                                         f"it, or pass --out DIR for a new study folder")
                replan = True  # no member started (say, its dataset was offline): the new plan replaces it
        elif path.is_dir() and any(p.name != ".lock" for p in path.iterdir()):
            raise NeuratermError(f"{path} is not empty and holds no {study_mod.STUDY_FILE}; pass --out for a new folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NeuratermError(f"{path}: cannot create the study folder ({exc.strerror})") from None
        members = study_mod.members(study) if replan else cls._members(study, path)
        folder = cls(path, study, members)
        folder.replanned = changed if replan else []
        if replan or not copy.is_file():
            _write(copy, study_mod.to_toml(study))
        for member in folder.members:
            target = folder.config_path(member.name)
            if replan or not target.is_file():
                _write(target, config_mod.to_toml(member.config))
        return folder

    @classmethod
    def open(cls, path: Path) -> "StudyFolder":
        path = Path(path)
        study = study_mod.load(str(path))
        return cls(path, study, cls._members(study, path))

    @staticmethod
    def _members(study: study_mod.Study, path: Path) -> list[study_mod.Member]:
        def full_batch(config: config_mod.Config) -> int:
            saved = path / CONFIGS / f"{config.name.split('/', 1)[-1]}.toml"
            return config_mod.load_toml(saved).train.batch_size if saved.is_file() \
                else study_mod.training_samples(config)
        return study_mod.members(study, full_batch)

    # -- members ---------------------------------------------------------------------------------
    def member(self, name: str) -> study_mod.Member:
        if name not in self._by_name:
            from neuraterm.core.errors import did_you_mean
            raise NeuratermError(f"{self.path}: no member {name!r}{did_you_mean(name, self._by_name)}")
        return self._by_name[name]

    def member_dir(self, name: str) -> Path:
        return self.path / self.member(name).name

    def config_path(self, name: str) -> Path:
        return self.path / CONFIGS / f"{name}.toml"

    def log_path(self, name: str) -> Path:
        return self.path / LOGS / f"{name}.log"

    def state(self, name: str) -> MemberState:
        member = self.member(name)
        path = self.path / member.name
        info = runs.describe(path)
        state = {"empty": "waiting"}.get(info.status, info.status)
        if state == "failed" and "diverged" in info.failure:
            state = "diverged"
        if state in ("waiting", "interrupted") and name in self.pruned():
            state = "pruned"
        note = self.retrying(name) if state not in DONE else ""
        return MemberState(member, path, "retrying" if note else state, info, note)

    def retrying(self, name: str) -> str:
        """The driver's note that Ray Tune runs the member again (its node was lost, its process died),
        while that is news: the note is the last line of the member's log, the log was written after the
        member's own event log (a restarted member writes an event as it starts), and a driver holds
        the study. Its folder alone cannot say it: until the retry starts it reads as running (a holder
        on a lost node) or interrupted."""
        from neuraterm.core.run.event_log import LOG_FILE
        from neuraterm.core.run.lock import holder
        try:
            fd = folder_files.open_file(self.path, f"{LOGS}/{name}.log")
        except OSError:
            return ""
        with os.fdopen(fd, "rb") as f:
            written = os.fstat(fd).st_mtime_ns
            f.seek(max(0, os.fstat(fd).st_size - 4096))
            lines = f.read(4096).decode("utf-8", "replace").splitlines()
        last = lines[-1] if lines else ""
        if not (last.startswith("neuraterm: ") and RETRY_NOTE in last):
            return ""
        try:
            fd = folder_files.open_file(self.path, f"{self.member(name).name}/{LOG_FILE}")
            member_wrote = os.fstat(fd).st_mtime_ns
            os.close(fd)
        except OSError:
            member_wrote = 0
        if member_wrote >= written or holder(self.path) is None:
            return ""
        return last[len("neuraterm: "):][:200]

    def states(self) -> list[MemberState]:
        return [self.state(m.name) for m in self.members]

    def missing_data(self) -> list[str]:
        """One line per dataset that a member still to train needs and this machine does not hold (the
        first such member downloads it; offline, it fails and the study stops with its line)."""
        from neuraterm.core.data import custom, registry
        lines = []
        needed = {(s.member.config.data.dataset, s.member.config.data.data_dir) for s in self.states()
                  if s.state not in DONE}
        for dataset, data_dir in sorted(needed):
            if dataset not in registry.DATASETS and custom.is_path(dataset):
                path, _ = custom.locate(dataset)  # a path that is not there: one line, before any member starts
                continue
            if registry.locate(dataset, Path(data_dir).expanduser() if data_dir else None) is None:
                lines.append(f"{dataset} is not on this machine: the first member downloads it into "
                             f"{registry.cache_dir() / dataset} (or --data-dir DIR; --set data.dataset=\"mnist-5k\" "
                             f"trains on the embedded digits)")
        return lines

    def pruned(self) -> set[str]:
        try:
            return set(folder_files.read_bytes(self.path, PRUNED, 1 << 20).decode("utf-8", "replace").split())
        except OSError:
            return set()

    def mark_pruned(self, name: str) -> None:
        fd = folder_files.open_file(self.path, PRUNED, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # never through a link
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(name + "\n")

    # -- running one member ----------------------------------------------------------------------
    def command(self, name: str, threads: int = 0, epochs: int | None = None) -> list[str]:
        """The `neuraterm` command line that trains `name` (a new run) or continues it (a resume);
        `epochs` trains it to that epoch only (a PBT generation)."""
        path = self.member_dir(name)
        extra = (["--threads", str(threads)] if threads else []) + (["--epochs", str(epochs)] if epochs else [])
        if checkpoint.checkpoint_dir(path) is not None:
            return child.command("resume", str(path), *extra)
        fork = self.member(name).fork
        if fork is not None:  # a [[fork]] member starts from its parent member's kept epoch
            return child.command("fork", str(self.member_dir(fork[0])), "--epoch", str(fork[1]),
                                 "--preset", str(self.config_path(name)), "--out", str(path), *extra)
        return child.command("train", "--preset", str(self.config_path(name)), "--out", str(path), *extra)

    def blocked(self, name: str) -> str | None:
        """Why a [[fork]] member cannot start yet (its parent has not reached the epoch), else None."""
        member = self.member(name)
        if member.fork is None or checkpoint.checkpoint_dir(self.member_dir(name)) is not None:
            return None
        parent, epoch = member.fork
        if epoch in checkpoint.epoch_checkpoints(self.member_dir(parent)):
            return None
        return f"waits for {parent} to reach epoch {epoch}"

    def start(self, name: str, threads: int = 0, env: dict | None = None,
              die_with_parent: bool = False, epochs: int | None = None) -> subprocess.Popen:
        """Train or resume one member in its own process (its output appended to logs/<member>.log).

        The process gets a session of its own, so a Ctrl-C at the terminal reaches the driver only
        (which passes exactly one signal on). `die_with_parent` (Linux) sends it SIGTERM when the
        thread that started it ends, so a member never trains on unwatched after its driver was killed;
        start it from a thread that lives as long as the caller (not a short-lived worker)."""
        state = self.state(name)
        if state.state in ("running", "paused"):
            raise NeuratermError(f"{state.path} is being trained already")
        if state.state == "retrying":  # Ray's driver is about to start it again: two writers on one folder
            raise NeuratermError(f"{name} is being retried by the Ray driver of {self.path} ({state.note}); wait "
                                 f"for it, or stop that driver first")
        if self.study.scheduler == "pbt" and epochs is None:  # alone it would train past the next round
            raise NeuratermError(f"{name} is a member of a PBT population, which trains in generations: "
                                 f"run 'neuraterm study {self.path}' to continue it")
        try:
            if not self.log_path(name).parent.is_symlink():
                self.log_path(name).parent.mkdir(exist_ok=True)
            log = os.fdopen(folder_files.open_file(self.path, f"{LOGS}/{name}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT),
                            "ab")
        except OSError as exc:
            raise NeuratermError(f"cannot start {name}: {self.log_path(name)} ({exc.strerror or exc})") from None
        with log:
            return subprocess.Popen(self.command(name, threads, epochs), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_parent_death_signal() if die_with_parent else None,
                                    env={**os.environ, "NO_COLOR": "1", **(env or {})})

    def stop(self, name: str) -> str:
        """Ask a running member to stop (it saves a checkpoint); `start` resumes it later."""
        return commands.send(self.member_dir(name), "stop")

    def last_error(self, name: str) -> str:
        """The member process's one-line error, from the end of its log."""
        try:
            lines = folder_files.read_bytes(self.path, f"{LOGS}/{name}.log").decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines[-50:]):
            if line.startswith("neuraterm: "):
                return line[len("neuraterm: "):].removeprefix("error: ")
        return lines[-1] if lines else ""

    def lock(self) -> WriterLock:
        """The driver's lock: one `neuraterm study` per study folder at a time."""
        from neuraterm.core.run.lock import holder
        try:
            return WriterLock(self.path).acquire()
        except NeuratermError:
            who = holder(self.path)
            if who is None:  # not another driver: the lock itself could not be taken, and that error says why
                raise
            raise NeuratermError(f"{self.path} is being run by pid {who.get('pid', '?')} on {who.get('host', '?')}; "
                                 f"one driver per study folder") from None


def started_members(path: Path) -> list[str]:
    """The member folders of a study folder where a run started (a checkpoint, or an event log: a
    member that failed or diverged is a result too). One that failed before it read its data (an
    offline dataset) never made its folder."""
    from neuraterm.core.run.event_log import LOG_FILE
    try:
        return sorted(p.name for p in Path(path).iterdir() if p.is_dir() and (
            checkpoint.checkpoint_dir(p) is not None or (p / LOG_FILE).exists()))
    except OSError:
        return []


def _driven(path: Path) -> bool:
    """Whether a driver holds the study folder or some process trains one of its members."""
    from neuraterm.core.run.lock import holder
    try:
        return holder(path) is not None or any(holder(p) is not None for p in Path(path).iterdir() if p.is_dir())
    except OSError:
        return False


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_atomic(path, text.encode("utf-8"))


def _parent_death_signal():
    """Linux: a function for the child (between fork and exec) that asks for SIGTERM when its parent
    dies (the member then saves and exits 143). Looked up here, in the parent, so that the child runs
    no import while other threads of the parent (a live display) may hold the import lock."""
    try:
        import ctypes
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
