"""The one module that opens SSH connections to clusters (paramiko).

One persistent transport per cluster, reused for every command and for SFTP; TCP_NODELAY so a short
command costs one round trip, not a Nagle + delayed-ACK stall; the server's host key must match the
pinned one or nothing is sent; every argument is `shlex.quote`d at the single place commands are built.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shlex
import socket
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import paramiko

log = logging.getLogger(__name__)


class SlurmError(Exception):
    """Anything that went wrong talking to a cluster: connection, authentication or a command."""


class HostKeyMismatch(SlurmError):
    """The server presented a host key other than the pinned one: refuse to talk to it."""


class ClusterUnreachable(SlurmError):
    """No connection could be made (refused, timed out, authentication failed, backing off)."""


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self) -> CommandResult:
        if not self.ok:
            detail = (self.stderr or self.stdout).strip()[:2000]
            raise SlurmError(f"`{self.command.split(' ', 1)[0]}` exited {self.exit_status}: {detail}")
        return self


def quote_command(argv: Sequence[str]) -> str:
    """The shell command line for argv, every argument quoted. The only way commands are built."""
    if not argv:
        raise ValueError("empty command")
    for arg in argv:
        if "\x00" in arg:
            raise SlurmError("NUL byte in a command argument")
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def chain_commands(*argvs: Sequence[str]) -> str:
    """Several quoted commands run in one round trip, stopping at the first failure (`a && b`)."""
    return " && ".join(quote_command(argv) for argv in argvs)


def parse_host_key(line: str) -> paramiko.PKey:
    """A PKey from an OpenSSH public key line (`ssh-ed25519 AAAA… [comment]`)."""
    parts = line.strip().split()
    if len(parts) < 2:
        raise SlurmError("host key must look like 'ssh-ed25519 AAAA…'")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except Exception as error:
        raise SlurmError(f"unreadable host key: {error}") from error


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint (`SHA256:…`, unpadded base64)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def load_private_key(path: Path) -> paramiko.PKey:
    try:
        text = path.read_text()
    except OSError as error:  # missing or unreadable: the cluster is unreachable, the loop goes on
        raise ClusterUnreachable(f"cannot read the private key in {path}: {error}") from error
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(StringIO(text))
        except Exception as error:  # try the next key type
            errors.append(f"{kind.__name__}: {error}")
    raise ClusterUnreachable(f"cannot read the private key in {path}: " + "; ".join(errors))


def _open_socket(host: str, port: int, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        raise ClusterUnreachable(f"cannot connect to {host}:{port}: {error}") from error
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def fetch_host_key(host: str, port: int, timeout: float = 10.0) -> paramiko.PKey:
    """The key a server presents, for an admin to inspect and trust once. Authenticates nothing."""
    transport = paramiko.Transport(_open_socket(host, port, timeout))
    try:
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except paramiko.SSHException as error:
        raise ClusterUnreachable(f"SSH handshake with {host}:{port} failed: {error}") from error
    finally:
        transport.close()


@dataclass
class Connection:
    """A persistent SSH transport to one login node."""

    host: str
    port: int
    username: str
    key_path: Path
    host_key: str
    timeout: float = 15.0
    commands_run: int = 0
    sftp_ops: int = 0
    _transport: paramiko.Transport | None = field(default=None, repr=False)
    _sftp: paramiko.SFTPClient | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    def open(self) -> None:
        if self.is_open:
            return
        self.close()
        if not self.host_key:
            raise HostKeyMismatch(
                f"no host key is pinned for {self.host}:{self.port}; an admin must check and trust it first"
            )
        pinned = parse_host_key(self.host_key)
        private_key = load_private_key(self.key_path)
        transport = paramiko.Transport(_open_socket(self.host, self.port, self.timeout))
        try:
            transport.start_client(timeout=self.timeout)
            offered = transport.get_remote_server_key()
            if key_line(offered) != key_line(pinned):
                raise HostKeyMismatch(
                    f"host key of {self.host}:{self.port} changed: pinned {fingerprint(pinned)}, "
                    f"server offers {fingerprint(offered)}. Refusing to connect."
                )
            transport.auth_publickey(self.username, private_key)
        except paramiko.AuthenticationException as error:
            transport.close()
            raise ClusterUnreachable(
                f"authentication as {self.username}@{self.host} failed: {error}"
            ) from error
        except paramiko.SSHException as error:
            transport.close()
            raise ClusterUnreachable(f"SSH to {self.host}:{self.port} failed: {error}") from error
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(30)
        self._transport = transport

    def close(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # already gone
                log.debug("closing SFTP failed", exc_info=True)
        if self._transport is not None:
            self._transport.close()
        self._sftp = None
        self._transport = None

    def run(self, argv: Sequence[str], stdin: bytes | None = None, timeout: float = 120.0) -> CommandResult:
        return self.run_shell(quote_command(argv), stdin=stdin, timeout=timeout)

    def run_shell(self, command: str, stdin: bytes | None = None, timeout: float = 120.0) -> CommandResult:
        """Run a command line built by `quote_command`/`chain_commands` (never from user text)."""
        with self._lock:
            self.open()
            assert self._transport is not None
            try:
                channel = self._transport.open_session(timeout=self.timeout)
            except (paramiko.SSHException, OSError, EOFError) as error:
                self.close()
                raise ClusterUnreachable(f"lost the connection to {self.host}: {error}") from error
            self.commands_run += 1
            try:
                channel.settimeout(timeout)
                channel.exec_command(command)
                if stdin is not None:
                    channel.sendall(stdin)
                channel.shutdown_write()
                out, err = bytearray(), bytearray()
                deadline = time.monotonic() + timeout
                while True:
                    while channel.recv_ready():
                        out += channel.recv(65536)
                    while channel.recv_stderr_ready():
                        err += channel.recv_stderr(65536)
                    # Done at exit status *and* end of output: sshd may send the exit status before
                    # the last output (e.g. a background process still holding stdout).
                    if (
                        channel.exit_status_ready()
                        and (channel.eof_received or channel.closed)
                        and not channel.recv_ready()
                        and not channel.recv_stderr_ready()
                    ):
                        break
                    if time.monotonic() > deadline:
                        raise SlurmError(f"`{command[:80]}` did not finish within {timeout:.0f} s")
                    if channel.status_event.is_set():
                        time.sleep(0.002)  # exited; the rest of its output is on the way
                    else:
                        channel.status_event.wait(0.01)
                status = channel.recv_exit_status()
            except (TimeoutError, paramiko.SSHException, OSError, EOFError) as error:
                self.close()
                raise ClusterUnreachable(f"lost the connection to {self.host}: {error}") from error
            finally:
                channel.close()
        return CommandResult(command, status, out.decode(errors="replace"), err.decode(errors="replace"))

    # --- SFTP over the same transport ---------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        self.open()
        if self._sftp is None:
            assert self._transport is not None
            client = paramiko.SFTPClient.from_transport(self._transport)
            if client is None:
                raise ClusterUnreachable(f"SFTP to {self.host} failed")
            self._sftp = client
        return self._sftp

    def read_from(self, path: str, offset: int, max_bytes: int = 1 << 20) -> bytes:
        """Up to max_bytes of a remote file from offset (b'' when missing or nothing new)."""
        with self._lock:
            try:
                sftp = self._sftp_client()
                self.sftp_ops += 1
                with sftp.open(path, "rb") as handle:
                    handle.seek(offset)
                    return handle.read(max_bytes)
            except FileNotFoundError:
                return b""
            except (paramiko.SSHException, OSError, EOFError) as error:
                if isinstance(error, OSError) and getattr(error, "errno", None) is not None:
                    return b""  # e.g. permission denied on a file that is not ours
                self.close()
                raise ClusterUnreachable(f"SFTP read of {path} failed: {error}") from error

    def listdir(self, path: str) -> list[tuple[str, int, bool]]:
        """(name, size, is_dir) of each entry of a remote directory ([] when it does not exist)."""
        with self._lock:
            try:
                sftp = self._sftp_client()
                self.sftp_ops += 1
                return sorted(
                    (entry.filename, entry.st_size or 0, stat.S_ISDIR(entry.st_mode or 0))
                    for entry in sftp.listdir_attr(path)
                )
            except FileNotFoundError:
                return []
            except (paramiko.SSHException, OSError, EOFError) as error:
                if isinstance(error, OSError) and getattr(error, "errno", None) is not None:
                    return []
                self.close()
                raise ClusterUnreachable(f"SFTP listing of {path} failed: {error}") from error

    def write_file(self, path: str, data: bytes, mode: int = 0o640) -> None:
        """Write a remote file, creating its parent directories."""
        with self._lock:
            try:
                sftp = self._sftp_client()
                self.sftp_ops += 1
                parent = path.rsplit("/", 1)[0]
                self._makedirs(sftp, parent)
                with sftp.open(path, "wb") as handle:
                    handle.write(data)
                sftp.chmod(path, mode)
            except (paramiko.SSHException, OSError, EOFError) as error:
                self.close()
                raise SlurmError(f"SFTP write of {path} failed: {error}") from error

    @staticmethod
    def _makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        current = "/" if path.startswith("/") else ""
        for part in parts:
            current = f"{current}{part}" if current.endswith("/") or not current else f"{current}/{part}"
            try:
                if not stat.S_ISDIR(sftp.stat(current).st_mode or 0):
                    raise SlurmError(f"{current} exists and is not a directory")
            except FileNotFoundError:
                sftp.mkdir(current)


@dataclass
class _Backoff:
    failures: int = 0
    retry_at: float = 0.0
    host_key_mismatch: str = ""  # the last failure was a changed host key: keep saying so


class Pool:
    """One Connection per cluster for the life of the process; failed connects back off exponentially
    (1 s, 2 s, 4 s … capped at `max_backoff`) so a dead login node is not hammered."""

    def __init__(self, max_backoff: float = 60.0) -> None:
        self._connections: dict[object, Connection] = {}
        self._backoff: dict[object, _Backoff] = {}
        self._lock = threading.Lock()
        self.max_backoff = max_backoff

    def get(self, key: object, make: Connection) -> Connection:
        """The cached connection for key, replaced when its settings changed (host, key, pinned key)."""
        with self._lock:
            current = self._connections.get(key)
            settings = (make.host, make.port, make.username, make.key_path, make.host_key)
            if (
                current is None
                or (current.host, current.port, current.username, current.key_path, current.host_key)
                != settings
            ):
                if current is not None:
                    current.close()
                    self._backoff.pop(key, None)  # new settings (e.g. a newly pinned key): try at once
                current = make
                self._connections[key] = current
            return current

    def connect(self, key: object, make: Connection) -> Connection:
        """An open connection, or ClusterUnreachable while backing off after failures."""
        connection = self.get(key, make)
        if connection.is_open:
            return connection
        backoff = self._backoff.setdefault(key, _Backoff())
        now = time.monotonic()
        if now < backoff.retry_at:
            if backoff.host_key_mismatch:
                raise HostKeyMismatch(backoff.host_key_mismatch)
            raise ClusterUnreachable(f"retrying {make.host} in {backoff.retry_at - now:.0f} s")
        try:
            connection.open()
        except SlurmError as error:
            backoff.failures += 1
            backoff.retry_at = now + min(self.max_backoff, 2 ** (backoff.failures - 1))
            backoff.host_key_mismatch = str(error) if isinstance(error, HostKeyMismatch) else ""
            raise
        backoff.failures = 0
        backoff.retry_at = 0.0
        backoff.host_key_mismatch = ""
        return connection

    def reset_backoff(self, key: object) -> None:
        self._backoff.pop(key, None)

    def close_all(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()
            self._backoff.clear()


pool = Pool()
