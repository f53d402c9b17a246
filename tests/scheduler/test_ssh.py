"""scheduler.ssh against the dev cluster's real sshd: results, pinned host keys, quoting, one transport,
SFTP reads from offsets, and the pool's backoff."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scheduler import ssh


def make_connection(info: dict[str, Any], **changes: Any) -> ssh.Connection:
    settings: dict[str, Any] = {
        "host": info["host"],
        "port": int(info["port"]),
        "username": info["username"],
        "key_path": Path(info["key_path"]),
        "host_key": info["host_key"],
    }
    settings.update(changes)
    return ssh.Connection(**settings)


def other_host_key() -> str:
    """A well-formed ed25519 public key line that is not the server's."""
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def conn(devcluster_info: dict[str, Any]) -> Iterator[ssh.Connection]:
    connection = make_connection(devcluster_info)
    yield connection
    connection.close()


@pytest.fixture
def scratch(conn: ssh.Connection, devcluster_info: dict[str, Any]) -> Iterator[str]:
    """A fresh remote directory, removed afterwards."""
    path = f"{devcluster_info['service_dir']}/test-ssh-{uuid.uuid4().hex[:10]}"
    conn.run(["mkdir", "-p", path]).check()
    yield path
    conn.run(["rm", "-rf", path])


def remote_exists(conn: ssh.Connection, path: str) -> bool:
    return conn.run(["test", "-e", path]).exit_status == 0


def test_run_returns_stdout_stderr_and_exit_status(conn: ssh.Connection) -> None:
    result = conn.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.stdout, result.stderr, result.exit_status, result.ok) == ("out\n", "err\n", 7, False)
    with pytest.raises(ssh.SlurmError, match="exited 7: err"):
        result.check()
    ok = conn.run(["id", "-un"]).check()
    assert (ok.stdout, ok.exit_status) == (f"{conn.username}\n", 0)


def test_output_that_arrives_after_the_exit_status_is_not_lost(conn: ssh.Connection) -> None:
    """sshd sends the exit status when the command exits; output still held by a child (here one in
    the background) follows it. Reading must go on to the end of the output."""
    result = conn.run(["sh", "-c", "(sleep 0.3; echo late; echo later >&2) & exit 5"])
    assert (result.exit_status, result.stdout, result.stderr) == (5, "late\n", "later\n")


def test_stdin_reaches_the_remote_command(conn: ssh.Connection) -> None:
    data = "line 1\nline 2 ü\n" * 1000
    assert conn.run(["cat"], stdin=data.encode()).check().stdout == data


def test_a_changed_host_key_is_refused_before_anything_runs(
    conn: ssh.Connection, devcluster_info: dict[str, Any], scratch: str
) -> None:
    marker = f"{scratch}/must-not-exist"
    impostor = make_connection(devcluster_info, host_key=other_host_key())
    with pytest.raises(ssh.HostKeyMismatch) as raised:
        impostor.run(["touch", marker])
    message = str(raised.value)
    assert devcluster_info["host_key_fingerprint"] in message  # what the server offered
    assert ssh.fingerprint(ssh.parse_host_key(impostor.host_key)) in message  # what was pinned
    assert impostor.commands_run == 0 and not impostor.is_open
    # The server side: no command ran, no SFTP either.
    with pytest.raises(ssh.HostKeyMismatch):
        impostor.read_from(marker, 0)
    assert not remote_exists(conn, marker)


def test_no_pinned_host_key_is_refused(
    conn: ssh.Connection, devcluster_info: dict[str, Any], scratch: str
) -> None:
    marker = f"{scratch}/must-not-exist"
    unpinned = make_connection(devcluster_info, host_key="")
    with pytest.raises(ssh.HostKeyMismatch, match="no host key is pinned"):
        unpinned.run(["touch", marker])
    assert unpinned.commands_run == 0 and not unpinned.is_open
    assert not remote_exists(conn, marker)


HOSTILE_ARGUMENTS = [
    "a; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "' ; touch {marker}; '",
    '" ; touch {marker}; "',
    "x\ntouch {marker}\n",
    "x && touch {marker} || touch {marker}",
    "| touch {marker}",
    "> {marker}",
    "$HOME ~ * ? [a] {{a,b}} \\ \\n \t end",
    "--help",
    "-e",
    "",
    "日本語 ✓",
]


@pytest.mark.parametrize("template", HOSTILE_ARGUMENTS)
def test_arguments_reach_the_remote_program_as_literal_single_arguments(
    conn: ssh.Connection, scratch: str, template: str
) -> None:
    marker = f"{scratch}/injected"
    argument = template.format(marker=marker)
    assert conn.run(["printf", "%s", argument]).check().stdout == argument
    # One argument each, whatever they contain: printf formats each one separately.
    result = conn.run(["printf", "[%s]", argument, argument]).check()
    assert result.stdout == f"[{argument}][{argument}]"
    assert conn.run_shell(ssh.chain_commands(["printf", "%s", argument], ["true"])).stdout == argument
    assert not remote_exists(conn, marker)


def test_a_nul_byte_is_refused_before_anything_is_sent(conn: ssh.Connection) -> None:
    with pytest.raises(ssh.SlurmError, match="NUL"):
        conn.run(["printf", "%s", "a\x00b"])
    assert conn.commands_run == 0


def test_tcp_nodelay_is_set_on_the_socket(conn: ssh.Connection) -> None:
    conn.run(["true"]).check()
    assert conn._transport is not None
    sock = conn._transport.sock
    assert isinstance(sock, socket.socket)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_one_transport_serves_every_command(conn: ssh.Connection) -> None:
    first = conn.run(["sh", "-c", 'echo "$SSH_CONNECTION"']).check().stdout
    transport = conn._transport
    for _ in range(24):
        # The server sees the same client address and port: one TCP connection, one SSH session.
        assert conn.run(["sh", "-c", 'echo "$SSH_CONNECTION"']).check().stdout == first
    assert conn._transport is transport
    assert conn.commands_run == 25
    client_port = first.split()[1]
    assert transport is not None and isinstance(transport.sock, socket.socket)
    assert str(transport.sock.getsockname()[1]) == client_port


def test_sftp_reads_from_offsets(conn: ssh.Connection, scratch: str) -> None:
    path = f"{scratch}/log.txt"
    commands_before = conn.commands_run
    conn.run(["sh", "-c", 'printf "first line\\n" > "$1"', "sh", path]).check()
    data = conn.read_from(path, 0)
    assert data == b"first line\n"
    offset = len(data)
    assert conn.read_from(path, offset) == b""  # nothing new
    conn.run(["sh", "-c", 'printf "second ✓\\nthird\\n" >> "$1"', "sh", path]).check()
    new = conn.read_from(path, offset)
    assert new == "second ✓\nthird\n".encode()
    assert conn.read_from(path, 0, max_bytes=5) == b"first"
    assert conn.read_from(path, offset + len(new)) == b""
    assert conn.read_from(f"{scratch}/missing.log", 0) == b""
    assert conn.read_from("/nonexistent-dir/x.log", 10) == b""
    assert conn.sftp_ops == 7
    assert conn.commands_run - commands_before == 2  # the two writes; the SFTP reads ran no commands


def test_sftp_write_file_creates_parents(conn: ssh.Connection, scratch: str) -> None:
    path = f"{scratch}/a/b/script.sh"
    conn.write_file(path, b"#!/bin/sh\necho hi\n", mode=0o750)
    assert conn.run(["stat", "-c", "%a", path]).check().stdout.strip() == "750"
    assert conn.read_from(path, 0) == b"#!/bin/sh\necho hi\n"


class Forwarder:
    """A TCP relay from a local port to the sshd: 'the login node comes back' on demand."""

    def __init__(self, listen_port: int, target: tuple[str, int]) -> None:
        self.server = socket.create_server(("127.0.0.1", listen_port))
        self.target = target
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = [self.server]
        self.accept_thread = threading.Thread(target=self._accept, daemon=True)
        self.accept_thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                thread.start()
                self.threads.append(thread)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def test_pool_backs_off_after_failures_and_recovers(devcluster_info: dict[str, Any]) -> None:
    port = free_port()
    pool = ssh.Pool(max_backoff=2.0)
    make = make_connection(devcluster_info, port=port)

    with pytest.raises(ssh.ClusterUnreachable, match="cannot connect"):
        pool.connect("c", make)
    # Backing off: refused at once, without trying (nothing listens anyway; the message says why).
    with pytest.raises(ssh.ClusterUnreachable, match="retrying"):
        pool.connect("c", make)
    time.sleep(1.1)
    with pytest.raises(ssh.ClusterUnreachable, match="cannot connect"):  # tried again after 1 s
        pool.connect("c", make)
    with pytest.raises(ssh.ClusterUnreachable, match="retrying"):  # now 2 s
        pool.connect("c", make)

    forwarder = Forwarder(port, (devcluster_info["host"], int(devcluster_info["port"])))
    try:
        time.sleep(0.5)
        with pytest.raises(ssh.ClusterUnreachable, match="retrying"):  # still within the 2 s
            pool.connect("c", make)
        deadline = time.monotonic() + 5
        while True:
            try:
                connection = pool.connect("c", make)
                break
            except ssh.ClusterUnreachable:
                assert time.monotonic() < deadline, "the pool did not reconnect"
                time.sleep(0.2)
        assert connection is make and connection.is_open
        assert connection.run(["echo", "back"]).check().stdout == "back\n"
        assert pool.connect("c", make) is connection  # cached, open: no new connection
        # Recovered: the next failure starts the backoff at 1 s again.
        assert pool._backoff["c"].failures == 0
    finally:
        pool.close_all()
        forwarder.close()


def test_pool_keeps_reporting_a_changed_host_key_while_backing_off(
    devcluster_info: dict[str, Any],
) -> None:
    pool = ssh.Pool(max_backoff=30.0)
    wrong = make_connection(devcluster_info, host_key=other_host_key())
    try:
        for _ in range(3):  # the first try, then two refusals while backing off: same diagnosis
            with pytest.raises(ssh.HostKeyMismatch, match=r"host key of .* changed"):
                pool.connect("c", wrong)
        # Pinning the right key replaces the connection and tries at once (no 30 s wait).
        right = make_connection(devcluster_info)
        assert pool.connect("c", right).run(["true"]).ok
    finally:
        pool.close_all()


def test_fetch_host_key_reports_what_the_server_offers(devcluster_info: dict[str, Any]) -> None:
    key = ssh.fetch_host_key(devcluster_info["host"], int(devcluster_info["port"]))
    assert ssh.key_line(key) == " ".join(devcluster_info["host_key"].split()[:2])
    assert ssh.fingerprint(key) == devcluster_info["host_key_fingerprint"]
    assert isinstance(key, paramiko.PKey)


def test_an_unreadable_private_key_is_an_unreachable_cluster(
    devcluster_info: dict[str, Any], tmp_path: Path
) -> None:
    missing = make_connection(devcluster_info, key_path=tmp_path / "nope")
    with pytest.raises(ssh.ClusterUnreachable, match="private key"):
        missing.open()
    directory = make_connection(devcluster_info, key_path=tmp_path)  # IsADirectoryError
    with pytest.raises(ssh.ClusterUnreachable, match="private key"):
        directory.open()
