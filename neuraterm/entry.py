"""The console entry point (`neuraterm` on the PATH, `python -m neuraterm`), apart from the package's
`__init__` so that importing `neuraterm.__version__` never reaches the command line."""


def main() -> None:
    """The console entry point. It imports nothing heavy before it can turn Ctrl-C into exit 130, so
    an interrupt at any instant of start-up ends quietly instead of with a traceback."""
    import signal
    import sys
    try:
        from neuraterm.cli import main as cli_main
        code = cli_main()
    except KeyboardInterrupt:
        code = 130
    # Done: a Ctrl-C during the interpreter's shutdown must not turn the exit code into a death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
