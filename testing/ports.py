"""Ports on 127.0.0.1 for servers a test or benchmark starts."""

import socket


def free_port() -> int:
    """A local port nothing listens on (the kernel just handed it out and took it back)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
