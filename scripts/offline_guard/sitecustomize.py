"""Refuse, and log, every outside network connection of a Python process (for checking "offline" claims).

    PYTHONPATH=scripts/offline_guard SFUMATO_CONNECTION_LOG=build/connections.log .venv/bin/sfumato evaluate ...

Python imports ``sitecustomize`` at start-up, so the command runs exactly as written. A
connection to anything but the loopback address raises ``OSError`` and appends one line
to ``$SFUMATO_CONNECTION_LOG`` (default ``connections.log``); an empty or missing log after
the run means no process tried to reach outside.
"""

import os
import socket

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_connect = socket.socket.connect


def _guarded(self, address):
    host = address[0] if isinstance(address, tuple) else str(address)
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOOPBACK:
        with open(os.environ.get("SFUMATO_CONNECTION_LOG", "connections.log"), "a") as log:
            log.write(f"{os.getpid()} {address}\n")
        raise OSError(f"outside connections are refused here: {address}")
    return _connect(self, address)


socket.socket.connect = _guarded
