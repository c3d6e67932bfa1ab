"""deploy/docker/helixpy-instance-id, the script the image runs for --instance."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import socket
import struct
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.unit.deploy.cli_lines import INSTANCE_ID_SCRIPT

# --- helixpy-instance-id (installed in the image) ------------------------------------------


def _instance_id_module() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("helixpy_instance_id", str(INSTANCE_ID_SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _ptr_reply(query: bytes, name: str) -> bytes:
    ident = struct.unpack(">H", query[:2])[0]
    header = struct.pack(">HHHHHH", ident, 0x8180, 1, 1, 0, 0)
    question = query[12:]
    rdata = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 12, 1, 600, len(rdata)) + rdata
    return header + question + answer


@pytest.fixture
def fake_docker_dns() -> Iterator[int]:
    """A UDP DNS server on 127.0.0.1 answering every PTR query like Docker's."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)

    def serve() -> None:
        try:
            query, peer = sock.recvfrom(512)
            sock.sendto(_ptr_reply(query, "helixpy-participant-2.helixpy_default"), peer)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
        thread.join(5.0)


def test_instance_id_is_the_replica_name_docker_dns_gives(fake_docker_dns: int) -> None:
    mod = _instance_id_module()
    name = mod.docker_name("172.18.0.5", server="127.0.0.1", port=fake_docker_dns, timeout=5.0)
    assert name == "helixpy-participant-2"


def test_instance_id_prefers_helixpy_instance_and_falls_back_to_the_hostname(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mod = _instance_id_module()
    monkeypatch.setenv("HELIXPY_INSTANCE", "w7")
    assert mod.instance_id() == "w7"
    monkeypatch.delenv("HELIXPY_INSTANCE")
    monkeypatch.setattr(mod, "docker_name", lambda ip: None)
    assert mod.instance_id() == socket.gethostname()
    query = mod.ptr_query("10.0.0.1", 7)
    assert b"\x011\x010\x010\x0210\x07in-addr\x04arpa\x00" in query
    assert mod.parse_ptr_answer(_ptr_reply(query, "a.b"), 8) is None  # not our query
    assert mod.parse_ptr_answer(_ptr_reply(query, "a.b"), 7) == "a.b"
