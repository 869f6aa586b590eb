"""Start-up costs a user pays before anything happens, beside references measured in the same run.

    python bench/startup.py [--repeats 7]

Rows, interleaved round by round and reported as medians (this machine is shared and noisy):
- `python -c pass`: the interpreter alone, the floor of every command;
- `neuraterm --help` and a usage error (`neuraterm --bogus`): targets <= 0.15 s;
- a study member's fixed cost: a `neuraterm train` of one epoch on 420 samples of the embedded digits with a
  16-unit model (its training itself takes milliseconds), target <= 0.3 s;
- a minimal Textual app's first frame and the neuraterm app's first frame (Setup at 80x24), read from a
  pseudo-terminal the way a terminal shows them: target <= 0.6 s.
Each row also prints its time minus the reference it stands on (the interpreter, or the minimal app),
which is what neuraterm itself adds and what moves least with the machine's load.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time

PY = sys.executable
MINIMAL_APP = ("from textual.app import App\nfrom textual.widgets import Static\n"
               "class A(App):\n    def compose(self):\n        yield Static('first-frame-here')\nA().run()\n")


def timed(cmd: list[str], env=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def first_frame(cmd: list[str], marker: bytes, cwd: str, timeout: float = 30.0) -> float:
    """Seconds from spawning `cmd` on an 80x24 pseudo-terminal until `marker` is on its screen."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                seen += chunk
                # Textual draws with escape sequences between cells; compare the printable text only.
                if marker in bytes(b for b in seen if 32 <= b < 127):
                    return time.perf_counter() - start
        raise RuntimeError(f"{cmd}: {marker!r} never appeared")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="neuraterm-startup-")
    app_file = os.path.join(work, "minimal_app.py")
    with open(app_file, "w") as f:
        f.write(MINIMAL_APP)
    member = [PY, "-m", "neuraterm", "train", "--preset", "quick", "--set", "model.hidden=[16]",
              "--set", "data.limit=600", "--epochs", "1", "--out"]
    rows = {
        "python -c pass": lambda i: timed([PY, "-c", "pass"]),
        "neuraterm --help": lambda i: timed([PY, "-m", "neuraterm", "--help"]),
        "usage error (--bogus)": lambda i: timed([PY, "-m", "neuraterm", "--bogus"]),
        "study member, fixed cost": lambda i: timed([*member, os.path.join(work, f"member-{i}")]),
        "minimal Textual app, first frame": lambda i: first_frame([PY, app_file], b"first-frame-here", work),
        "neuraterm app, first frame": lambda i: first_frame([PY, "-m", "neuraterm"], b"Train", work),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for i in range(args.repeats):
        for name, run in rows.items():
            times[name].append(run(i))
    shutil.rmtree(work, ignore_errors=True)
    med = {name: statistics.median(v) for name, v in times.items()}
    base = {"neuraterm app, first frame": "minimal Textual app, first frame"}
    target = {"neuraterm --help": 0.15, "usage error (--bogus)": 0.15, "study member, fixed cost": 0.3,
              "neuraterm app, first frame": 0.6}
    print(f"{'':34} {'median s':>9} {'min s':>7} {'over ref':>9} {'target':>7}   ({args.repeats} rounds, interleaved)")
    for name in rows:
        ref = base.get(name, "python -c pass")
        over = "" if name in ("python -c pass",) else f"{med[name] - med[ref]:+9.3f}"
        print(f"{name:34} {med[name]:9.3f} {min(times[name]):7.3f} {over:>9} {target.get(name, ''):>7}")


if __name__ == "__main__":
    main()
