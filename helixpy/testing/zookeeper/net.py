"""Ports and four-letter words: talking to a ZooKeeper server over plain TCP."""

from __future__ import annotations

import contextlib
import socket
import time

from helixpy.testing.zookeeper.errors import ZooKeeperNotServing

_LOOPBACK = "127.0.0.1"
_NOT_SERVING = "not currently serving requests"


def free_port(host: str = _LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    The kernel picks it (bind to port 0), so parallel test runs do not collide on a fixed
    port. Another process can still grab it before the caller binds, which is why the
    server helpers retry start-up on "Address already in use".
    """
    return _free_ports(1, host)[0]


def _free_ports(count: int, host: str = _LOOPBACK) -> list[int]:
    # Keep every probe socket open until all are chosen so that the kernel cannot hand the
    # same port out twice (an ensemble needs 3 distinct ports per server).
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected 'host:port', got {address!r}")
    return host, int(port)


def four_letter_word(address: str, command: str, *, timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter word (``ruok``, ``srvr``, ``mntr``...) and return the reply.

    ``address`` is one ``host:port``. The server must whitelist the command
    (our servers set ``4lw.commands.whitelist=*``).

    Raises:
        OSError: the server could not be reached or did not answer within ``timeout``.
    """
    if len(command) != 4:
        raise ValueError(f"four-letter words have four letters, got {command!r}")
    host, port = _split_address(address)
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(command.encode("ascii"))
        # The server writes the whole reply and then closes; read to EOF, but never past
        # the caller's deadline even if it trickles.
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{command} to {address}: no complete reply in {timeout}s")
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _parse_mntr(text: str) -> dict[str, str]:
    stats: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            stats[key.strip()] = value.strip()
    return stats


def server_stats(address: str, *, timeout: float = 2.0) -> dict[str, str]:
    """Return one server's ``mntr`` statistics as a ``{name: value}`` dict.

    Keys are ZooKeeper's (``zk_server_state``, ``zk_znode_count``, ``zk_packets_received``,
    ...); values are left as strings because a few are not numbers (``zk_version``).

    Raises:
        ZooKeeperNotServing: the server is up but not serving (e.g. during an election).
        OSError: the server could not be reached.
    """
    reply = four_letter_word(address, "mntr", timeout=timeout)
    if _NOT_SERVING in reply:
        raise ZooKeeperNotServing(f"{address}: {reply.strip()}")
    return _parse_mntr(reply)


def _mode_from_srvr(address: str, reply: str) -> str:
    for line in reply.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Mode":
            return value.strip()
    raise ZooKeeperNotServing(f"{address}: {reply.strip() or 'empty srvr reply'}")
