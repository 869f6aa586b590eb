"""cosmic-ray's test command: `pytest ARGS` run by scripts/mutation_server.py, exiting with pytest's code.

    python -S scripts/mutation_client.py SOCKET ARGS...

Standard library only and started with -S, so it costs a few milliseconds. The server's child writes to
this process's standard streams (they are passed over the socket). Without a server, or if the server
goes away mid-run, it runs `python -m pytest ARGS` itself: slower, never a wrong verdict.
"""
import json
import os
import socket
import sys


def main() -> None:
    path, args = sys.argv[1], sys.argv[2:]
    request = json.dumps({"cwd": os.getcwd(), "env": dict(os.environ), "args": args}).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(path)
            socket.send_fds(conn, [request], [0, 1, 2])
            code = conn.recv(1)
    except OSError:
        code = b""
    if code:
        sys.exit(code[0])
    print("mutation client: no answer from the server at", path, "- running pytest here", file=sys.stderr)
    python = os.environ.get("MUTATION_PYTHON_FALLBACK", sys.executable)
    os.execv(python, [python, "-m", "pytest", *args])


if __name__ == "__main__":
    main()
