"""Studies on a real Ray cluster on this machine: a head node (no CPUs, so no member runs there) and
worker nodes started with `ray start --block`, each in a private mount namespace where the driver's
folder is an empty tmpfs: a worker that cannot see the study folder, as on two machines without NFS.

Needs Ray (the `[ray]` extra), root (for `unshare -m`) and Linux; the members are the tiny ones of
test_studies.py. Every node is killed by its process group in the fixture's teardown."""
import csv
import re
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from neuraterm.core.study.folder import StudyFolder

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None or not hasattr(os, "geteuid") or os.geteuid() != 0
    or shutil.which("unshare") is None, reason="needs Ray, root and unshare (a worker node without the driver's disk)")

TWO = ('name = "two"\npreset = "quick"\n[set]\n"data.dataset" = "mnist-5k"\n"data.limit" = 1000\n'
       '"model.hidden" = [16]\n"train.epochs" = 3\n[grid]\n"optimizer.lr" = [0.01, 0.02]\n')
SAME = ("member", "state", "epochs", "best_epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
        "test_acc", "macro_f1", "parameters")
# A lost node is noticed within about two seconds instead of Ray's default half a minute.
FAST_HEALTH = {"RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "500",
               "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "3"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra) -> dict:
    return {**os.environ, "NO_COLOR": "1", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **extra}


def table(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as f:
        return [{k: row[k] for k in SAME} for row in csv.DictReader(f)]


def study(*args, cwd, timeout=300, **extra):
    return subprocess.run([sys.executable, "-m", "neuraterm", "study", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env(**extra))


class Cluster:
    """A head node and worker nodes of this machine's Ray, each `ray start --block` in its own session."""

    def __init__(self, root: Path):
        self.root, self.nodes, self.port = root, [], free_port()
        self.address = f"127.0.0.1:{self.port}"
        (root / "logs").mkdir(parents=True)
        self.temp = Path(tempfile.mkdtemp(prefix="nt-ray-", dir="/tmp"))  # Ray's sockets need a short path

    def start(self, *args, hide: Path | None = None, **extra) -> subprocess.Popen:
        # `ray start` through this Python: the node's workers run it too, and import this checkout's neuraterm
        command = [sys.executable, "-m", "ray.scripts.scripts", "start", *args, "--block", "--disable-usage-stats", f"--dashboard-agent-listen-port={free_port()}",
                   f"--metrics-export-port={free_port()}"]
        if hide is not None:  # the driver's folder is an empty tmpfs for this node
            command = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(hide), *command]
        log = open(self.root / "logs" / f"node-{len(self.nodes)}.log", "wb")
        node = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env(**FAST_HEALTH, **extra))
        self.nodes.append(node)
        return node

    def head(self) -> None:
        self.wait(self.start("--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false",
                             f"--temp-dir={self.temp}"))

    def worker(self, hide: Path, **extra) -> subprocess.Popen:
        return self.wait(self.start(f"--address={self.address}", "--num-cpus=1", hide=hide, **extra))

    def wait(self, node: subprocess.Popen) -> subprocess.Popen:
        """Until `ray start` says the node runs (it has joined the cluster by then)."""
        log = self.root / "logs" / f"node-{self.nodes.index(node)}.log"
        deadline = time.time() + 120
        while "Ray runtime started" not in log.read_text(errors="replace"):
            assert time.time() < deadline and node.poll() is None, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        return node

    def kill(self, node: subprocess.Popen) -> None:
        try:
            os.killpg(node.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        node.wait(timeout=30)

    def shutdown(self) -> None:
        for node in reversed(self.nodes):
            self.kill(node)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path):
    scratch = set(Path(tempfile.gettempdir()).glob("neuraterm-member-*"))
    c = Cluster(tmp_path / "cluster")
    try:
        c.head()
        yield c
    finally:
        c.shutdown()
        for left in set(Path(tempfile.gettempdir()).glob("neuraterm-member-*")) - scratch:
            shutil.rmtree(left, ignore_errors=True)  # a killed node's member never got to clean its scratch


def test_a_worker_without_the_drivers_disk_trains_through_storage_and_survives_its_node_loss(cluster, tmp_path):
    """The study folder is invisible to the workers: without --storage the study stops before any
    member starts, with one line naming the path; with --storage every member folder travels as Tune
    checkpoints and is materialized in the driver's study folder. The first worker is killed after the
    first member's first epoch; the member resumes on a second worker from that epoch. The table is the
    one of a local --jobs 1 study, and the driver shows no traceback."""
    local, driver, storage = tmp_path / "local", tmp_path / "driver", tmp_path / "storage"
    for d in (local, driver, storage):
        d.mkdir()
        (d / "two.toml").write_text(TWO)
    reference = study("two.toml", "--jobs", 1, cwd=local)
    assert reference.returncode == 0, reference.stderr
    first = cluster.worker(hide=driver, NEURATERM_TEST_SAVE_DELAY="1.5")

    blind = study("two.toml", "--ray", cluster.address, cwd=driver)
    assert blind.returncode == 2 and blind.stderr.count("\n") == 1, blind.stdout + blind.stderr
    assert f"cannot see the study folder {driver / 'studies' / 'two'}" in blind.stderr and "--storage" in blind.stderr

    started = time.perf_counter()
    run = subprocess.Popen([sys.executable, "-m", "neuraterm", "study", "two.toml", "--ray", cluster.address,
                            "--jobs", "1", "--storage", str(storage)], cwd=driver, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env())
    member = driver / "studies" / "two" / "lr-0.01"
    deadline = time.time() + 180
    while not (member / "current").is_symlink() and run.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert StudyFolder.open(driver / "studies" / "two").state("lr-0.01").state == "running"  # as `watch` sees it
    cluster.kill(first)  # the node dies mid-study; its member's first epoch is already in the driver's folder
    cluster.worker(hide=driver)
    stdout, stderr = run.communicate(timeout=300)
    print(f"two members, 3 epochs, one node lost, through --storage: {time.perf_counter() - started:.1f} s")
    assert run.returncode == 0, stdout + stderr
    assert stderr == "" and all(line.startswith(("two: ", "lr-0.0", "member ", "figures: ")) for line in
                                stdout.splitlines() if line.strip()), stdout  # the table's rows, nothing of Ray's
    assert re.search(r"lr-0.01 +retrying .*its node \w{8} was lost; retrying from epoch [12]\n", stdout), stdout
    assert re.search(r"lr-0.01 +running .*retried on node \w{8} from epoch [12]\n", stdout), stdout
    assert table(driver / "studies" / "two") == table(local / "studies" / "two")
    folder = StudyFolder.open(driver / "studies" / "two")
    assert {s.state for s in folder.states()} == {"finished"}
    for s in folder.states():  # complete model folders: every checkpoint verified against its manifest
        from neuraterm.core.run import checkpoint
        assert checkpoint.load(s.path).config.train.epochs == 3
        assert (s.path / "report.json").is_file() and (s.path / "events.jsonl").is_file()
    assert (driver / "studies" / "two" / "ray" / "driver.log").is_file()


def test_a_cluster_with_token_authentication_is_one_line_naming_ray_auth_mode(tmp_path):
    """A head started with RAY_AUTH_MODE=token refuses a driver without its token: Ray itself says only
    'Failed to connect' (and prints a warning a second on stderr); the study says what to set."""
    token_cluster = Cluster(tmp_path / "cluster")
    try:
        token_cluster.wait(token_cluster.start(
            "--head", f"--port={token_cluster.port}", "--num-cpus=1", "--include-dashboard=false",
            f"--temp-dir={token_cluster.temp}", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0123456789abcdef" * 4))
        (tmp_path / "two.toml").write_text(TWO)
        result = study("two.toml", "--ray", token_cluster.address, cwd=tmp_path, RAY_py_gcs_connect_timeout_s="4")
    finally:
        token_cluster.shutdown()
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"neuraterm: error: --ray {token_cluster.address}: the cluster uses token "
                                    f"authentication") and "RAY_AUTH_MODE=token" in result.stderr
    assert "InvalidAuthToken" in (tmp_path / "studies" / "two" / "ray" / "driver.log").read_text()
