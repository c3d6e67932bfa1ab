"""The kazoo handler's poll-based select: select.select's answers, one poll(2) per wait."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from helixpy.store.handler import PollHandler, poll_select


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_nothing_to_read_times_out_empty(pair: tuple[socket.socket, socket.socket]) -> None:
    # Given a socket with nothing sent to it
    a, _ = pair
    # When waited on for reading with a short timeout
    # Then nothing is ready
    assert poll_select([a], [], [], 0.01) == ([], [], [])


def test_pending_data_is_readable_and_a_free_buffer_writable(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # Given bytes sent to a
    a, b = pair
    b.sendall(b"x")
    # When a is asked about reading and writing, b about reading
    readable, writable, exceptional = poll_select([a, b], [a], [], 1.0)
    # Then a is both (data pending, send buffer free), b neither, and nothing exceptional
    assert readable == [a]
    assert writable == [a]
    assert exceptional == []


def test_a_hang_up_wakes_the_reader(pair: tuple[socket.socket, socket.socket]) -> None:
    # Given a peer that closed its end
    a, b = pair
    b.close()
    # When a waits for reading with no timeout
    # Then it is ready at once (its read sees the end of stream)
    assert poll_select([a], [], [], None)[0] == [a]
    assert a.recv(1) == b""


def test_bad_arguments_are_refused_like_kazoo_does(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    with pytest.raises(ValueError, match="non-negative"):
        poll_select([a], [], [], -1)
    with pytest.raises(TypeError, match="number"):
        poll_select([a], [], [], "1")  # type: ignore[arg-type]
    closed = socket.socket()
    closed.close()
    with pytest.raises(TypeError):
        poll_select([closed], [], [], 0)


def test_the_handler_selects_with_it(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.sendall(b"y")
    assert PollHandler().select([a], [], [], 1.0) == ([a], [], [])
