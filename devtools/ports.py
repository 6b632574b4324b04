"""A free TCP port on loopback, for the servers the tests and the benchmark start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now.

    Closed again before it is returned: a server started on it next binds it,
    and a client pointed at it finds nothing there.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
