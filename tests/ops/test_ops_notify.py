"""The sd_notify protocol on its own: datagrams on $NOTIFY_SOCKET, path or '@abstract'."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from omerofs import notify


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    """A datagram socket systemd-style, named by $NOTIFY_SOCKET."""
    path = tmp_path / "n.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield s
    s.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.notify("READY=1") is False
    assert notify.ready() is False


def test_one_datagram_per_call(receiver):
    assert notify.ready("mounted x on /y")
    assert receiver.recv(4096) == b"READY=1\nSTATUS=mounted x on /y"
    assert notify.stopping()
    assert receiver.recv(4096) == b"STOPPING=1"
    assert notify.status("two\nlines")  # a status is one line
    assert receiver.recv(4096) == b"STATUS=two lines"
    with pytest.raises(ValueError):
        notify.notify("READY")


def test_abstract_namespace(monkeypatch):
    name = f"omerofs-test-{uuid.uuid4().hex}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        assert notify.notify("READY=1", "STATUS=ok")
        assert s.recv(4096) == b"READY=1\nSTATUS=ok"
    finally:
        s.close()


def test_undeliverable_or_foreign_addresses_do_not_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert notify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert notify.notify("READY=1") is False
    assert notify.socket_address("@x") == "\0x"
    assert notify.socket_address("relative/path") is None
    assert os.environ["NOTIFY_SOCKET"] == "vsock:2:1234"  # left as it was
