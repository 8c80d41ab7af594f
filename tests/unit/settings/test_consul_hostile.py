"""Consul answers that must not crash or hang: bad addresses, odd JSON, a trickling server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import consul
import pytest

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.sources import load, load_consul


@pytest.mark.parametrize("source", ["consul://[::1", "consul://user:pw@[::1", "consul://h:99999"])
def test_bad_consul_addresses_are_settings_errors(source: str) -> None:
    with pytest.raises(SettingsError, match="bad Consul address") as info:
        load(source)
    assert "pw" not in str(info.value)


@pytest.fixture
def server() -> Iterator[tuple[str, list[bytes]]]:
    """A local HTTP server: each connection gets the next scripted answer, sent one byte
    every 0.2 s when the answer starts with b'TRICKLE'."""
    answers: list[bytes] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                answer = answers.pop(0) if answers else b""
                try:
                    if answer.startswith(b"TRICKLE"):
                        for byte in answer[7:]:
                            if stop.is_set():
                                break
                            conn.sendall(bytes([byte]))
                            time.sleep(0.2)
                    else:
                        conn.sendall(answer)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}", answers
    stop.set()
    thread.join(5)
    sock.close()


def http(body: bytes, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Consul-Index: 1\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


@pytest.mark.parametrize("body", [b'"a string"', b"[1, 2]", b"{}", b"[{\"Key\": 5}]", b"nul"])
def test_odd_json_from_consul_is_a_settings_error(server: Any, body: bytes) -> None:
    address, answers = server
    answers += [http(body), http(body)]  # the settings key, then the variables' prefix
    with pytest.raises(SettingsError, match=r"unexpected answer from Consul|refused|not found"):
        load_consul(address, timeout_s=3)


def test_a_trickling_server_ends_within_the_timeout(server: Any) -> None:
    address, answers = server
    answers.append(b"TRICKLE" + http(b"x" * 200))
    started = time.monotonic()
    with pytest.raises(SettingsError, match="did not answer within 1 s"):
        load_consul(address, timeout_s=1)
    assert time.monotonic() - started < 3


def test_acl_denied_names_the_permission_and_the_token_option(server: Any) -> None:
    address, answers = server
    answers.append(http(b"Permission denied", "403 Forbidden"))
    with pytest.raises(SettingsError) as info:
        load_consul(address, timeout_s=3, token="secret-token-value")
    message = str(info.value)
    assert "denied permission to read (ACL): the token given" in message
    assert "needs key:read" in message and "--consul-token" in message
    assert "secret-token-value" not in message
    assert consul.ACLPermissionDenied  # the exception py-consul raises for 403
