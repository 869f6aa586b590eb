"""The command line of a neuraterm child process: a run the app starts, a study's member, the app that
`serve` puts in a browser. This interpreter runs the installed package, by a `-c` that imports it, not
by `python -m neuraterm`: `-m` puts the working directory first on `sys.path`, so started in a clone of
the repository (where the README's first command is typed) it imports the clone's `neuraterm/` folder,
which has no `core` or `tui` (they install from folders of their own: setup.py), and every run the app
or a study starts fails with ModuleNotFoundError. `-c` puts the working directory first too, as '', so
the code takes that entry out before it imports anything."""
from __future__ import annotations

import sys

LAUNCH = ("import sys\n"
          "if sys.path and sys.path[0] == '': del sys.path[0]\n"  # the working directory (absent under -P)
          "sys.argv[0] = 'neuraterm'\n"  # usage lines name the command, not '-c'
          "from neuraterm.entry import main\n"
          "main()")


def command(*args: str) -> list[str]:
    """`neuraterm ARGS` as a child process of this interpreter."""
    return [sys.executable, "-c", LAUNCH, *args]
