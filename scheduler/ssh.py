"""The one module that opens SSH connections to clusters (paramiko).

One persistent transport per (cluster, cluster user), reused for every command and for SFTP, closed
after a while unused; TCP_NODELAY so a short command costs one round trip, not a Nagle + delayed-ACK
stall; the server's host key must match the pinned one or nothing is sent; every argument is
`shlex.quote`d at the single place commands are built.

How a connection proves who it is, is a `Credential`: a key file (the service account), a short-lived
certificate signed by the portal's user CA for one principal (members, the default), or a key held in
memory (members' uploaded keys, decrypted by `scheduler.identity`). Nothing here reads the database.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import shlex
import socket
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Protocol

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    SSHCertificateBuilder,
    SSHCertificateType,
    load_ssh_private_key,
)

log = logging.getLogger(__name__)


class SlurmError(Exception):
    """Anything that went wrong talking to a cluster: connection, authentication or a command."""


class HostKeyMismatch(SlurmError):
    """The server presented a host key other than the pinned one: refuse to talk to it."""


class ClusterUnreachable(SlurmError):
    """No connection could be made (refused, timed out, authentication failed, backing off)."""


class AuthenticationFailed(ClusterUnreachable):
    """The login node answered but refused this user's key or certificate (unknown user, a CA the
    server does not trust, an expired certificate, a key not in authorized_keys)."""


class CredentialError(ClusterUnreachable):
    """Nothing to log in with: a key or CA file missing or unreadable, a principal refused here."""


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
        raise CredentialError(f"cannot read the private key in {path}: {error.strerror}") from error
    try:
        return parse_private_key(text)
    except CredentialError as error:
        raise CredentialError(f"cannot read the private key in {path}: {error}") from error


def parse_private_key(text: str) -> paramiko.PKey:
    """A PKey from an OpenSSH/PEM private key text (unencrypted). The error never quotes the text."""
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(StringIO(text))
        except Exception as error:  # try the next key type
            errors.append(f"{kind.__name__}: {type(error).__name__}")
    raise CredentialError("not an unencrypted OpenSSH private key (" + "; ".join(errors) + ")")


# --- credentials -----------------------------------------------------------------------------------------


class Credential(Protocol):
    def load(self) -> paramiko.PKey:
        """The key (with its certificate, if any) to authenticate with, made or read now."""
        ...

    def identity(self) -> tuple[object, ...]:
        """What makes two credentials the same (a pooled connection is replaced when it changes)."""
        ...


@dataclass(frozen=True)
class KeyFile:
    """A private key file on the portal host (the service account's)."""

    path: Path

    def load(self) -> paramiko.PKey:
        return load_private_key(self.path)

    def identity(self) -> tuple[object, ...]:
        return ("file", str(self.path))


@dataclass(frozen=True)
class StoredKey:
    """A private key held in memory (a member's uploaded key, decrypted only to log in)."""

    text: str = field(repr=False)
    fingerprint: str = ""

    def load(self) -> paramiko.PKey:
        return parse_private_key(self.text)

    def identity(self) -> tuple[object, ...]:
        return ("stored", self.fingerprint)


CERTIFICATE_LIFETIME = 300.0  # seconds; a session, once open, outlives it (sshd checks it at login)


@dataclass(frozen=True)
class Certificate:
    """A fresh key pair made in memory and an OpenSSH user certificate for it, signed by the portal's
    user CA for exactly one principal, valid for minutes, with no extensions: no pty, no port, agent or
    X11 forwarding, no ~/.ssh/rc. The login node trusts the CA once (`TrustedUserCAKeys`)."""

    ca_path: Path
    principal: str
    lifetime: float = CERTIFICATE_LIFETIME
    key_id: str = "tanuki-portal"

    def load(self) -> paramiko.PKey:
        ca = load_certificate_authority(self.ca_path)
        key = ed25519.Ed25519PrivateKey.generate()
        certificate = sign_certificate(ca, key.public_key(), self.principal, self.lifetime, self.key_id)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
        pkey = paramiko.Ed25519Key.from_private_key(StringIO(pem))
        pkey.load_certificate(certificate)
        return pkey

    def identity(self) -> tuple[object, ...]:
        return ("certificate", str(self.ca_path), self.principal)


def load_certificate_authority(path: Path) -> serialization.SSHCertPrivateKeyTypes:
    """The user CA's private key (OpenSSH format, unencrypted). Errors name the file, never its text."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CredentialError(f"cannot read the SSH user CA key {path}: {error.strerror}") from error
    try:
        key = load_ssh_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise CredentialError(f"the SSH user CA key {path} is not an unencrypted OpenSSH key") from error
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CredentialError(f"the SSH user CA key {path} is of a type that cannot sign certificates")
    return key


def sign_certificate(
    ca: serialization.SSHCertPrivateKeyTypes,
    public_key: ed25519.Ed25519PublicKey,
    principal: str,
    lifetime: float,
    key_id: str = "tanuki-portal",
) -> str:
    """An OpenSSH user certificate line (`ssh-ed25519-cert-v01@openssh.com AAAA…`) for one principal."""
    if not principal or any(c in principal for c in ", \n\x00"):
        raise CredentialError(f"refusing to sign a certificate for principal {principal!r}")
    now = int(time.time())
    certificate = (
        SSHCertificateBuilder()
        .public_key(public_key)
        .serial(secrets.randbits(64))
        .type(SSHCertificateType.USER)
        .key_id(f"{key_id}:{principal}".encode())
        .valid_principals([principal.encode()])
        .valid_after(now - 60)  # a login node whose clock is a little behind still accepts it
        .valid_before(now + int(lifetime))
        .sign(ca)
    )
    return certificate.public_bytes().decode()


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
    key_path: Path | None = None  # the service account's key file (or give `credential`)
    host_key: str = ""
    timeout: float = 15.0
    credential: Credential | None = None
    commands_run: int = 0
    sftp_ops: int = 0
    last_used: float = field(default_factory=time.monotonic)
    _transport: paramiko.Transport | None = field(default=None, repr=False)
    _sftp: paramiko.SFTPClient | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    @property
    def login(self) -> Credential:
        if self.credential is not None:
            return self.credential
        if self.key_path is None:
            raise CredentialError(f"no key or certificate to log in as {self.username}")
        return KeyFile(self.key_path)

    def settings(self) -> tuple[object, ...]:
        """What the pool compares: a change (host, pinned key, credential) replaces the connection."""
        return (self.host, self.port, self.username, self.host_key, self.login.identity())

    def open(self) -> None:
        if self.is_open:
            return
        self.close()
        if not self.host_key:
            raise HostKeyMismatch(
                f"no host key is pinned for {self.host}:{self.port}; an admin must check and trust it first"
            )
        pinned = parse_host_key(self.host_key)
        private_key = self.login.load()
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
            raise AuthenticationFailed(
                f"the login node refused {self.username}@{self.host}: {error}"
            ) from error
        except paramiko.SSHException as error:
            transport.close()
            raise ClusterUnreachable(f"SSH to {self.host}:{self.port} failed: {error}") from error
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(30)
        self._transport = transport
        self.last_used = time.monotonic()

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
            self.last_used = time.monotonic()
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
        self.last_used = time.monotonic()
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

    def access_problem(self, path: str, directory: bool | None = None) -> str | None:
        """Why this connection's user cannot read `path` ("does not exist", "cannot be read", "is a
        directory", "is not a directory"), or None when it can. `directory`: what it must be (None:
        either). A file is opened for reading and a directory listed, so permissions are the server's
        own answer, not a guess from mode bits."""
        with self._lock:
            try:
                sftp = self._sftp_client()
                self.sftp_ops += 1
                try:
                    attributes = sftp.stat(path)
                except FileNotFoundError:
                    return "does not exist"
                is_dir = stat.S_ISDIR(attributes.st_mode or 0)
                if directory is True and not is_dir:
                    return "is not a directory"
                if directory is False and is_dir:
                    return "is a directory, not a file"
                self.sftp_ops += 1
                if is_dir:
                    sftp.listdir(path)
                else:
                    sftp.open(path, "rb").close()
                return None
            except PermissionError:
                return "cannot be read (permission denied)"
            except (paramiko.SSHException, OSError, EOFError) as error:
                if isinstance(error, OSError) and getattr(error, "errno", None) is not None:
                    return f"cannot be read ({error.strerror or error})"
                self.close()
                raise ClusterUnreachable(f"SFTP check of {path} failed: {error}") from error

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

    def write_file(self, path: str, data: bytes, mode: int = 0o600, dir_mode: int = 0o700) -> None:
        """Write a remote file, only for its owner unless asked, creating its parent directories
        (only for their owner unless asked). The mode is set before any data is written."""
        with self._lock:
            try:
                sftp = self._sftp_client()
                self.sftp_ops += 1
                parent = path.rsplit("/", 1)[0]
                self._makedirs(sftp, parent, dir_mode)
                with sftp.open(path, "wb") as handle:
                    handle.chmod(mode)
                    handle.write(data)
            except (paramiko.SSHException, OSError, EOFError) as error:
                self.close()
                raise SlurmError(f"SFTP write of {path} failed: {error}") from error

    def remove_tree(self, path: str) -> None:
        """Delete a remote directory and what it holds (one level of files: the secrets directory)."""
        with self._lock:
            try:
                sftp = self._sftp_client()
                self.sftp_ops += 1
                for name in sftp.listdir(path):
                    sftp.remove(f"{path}/{name}")
                sftp.rmdir(path)
            except FileNotFoundError:
                return
            except (paramiko.SSHException, OSError, EOFError) as error:
                if isinstance(error, OSError) and getattr(error, "errno", None) is not None:
                    raise SlurmError(f"cannot remove {path}: {error}") from error
                self.close()
                raise ClusterUnreachable(f"SFTP removal of {path} failed: {error}") from error

    @staticmethod
    def _makedirs(sftp: paramiko.SFTPClient, path: str, mode: int = 0o700) -> None:
        parts = [p for p in path.split("/") if p]
        current = "/" if path.startswith("/") else ""
        for part in parts:
            current = f"{current}{part}" if current.endswith("/") or not current else f"{current}/{part}"
            try:
                if not stat.S_ISDIR(sftp.stat(current).st_mode or 0):
                    raise SlurmError(f"{current} exists and is not a directory")
            except FileNotFoundError:
                sftp.mkdir(current, mode)


@dataclass
class _Backoff:
    failures: int = 0
    retry_at: float = 0.0
    host_key_mismatch: str = ""  # the last failure was a changed host key: keep saying so
    refused: SlurmError | None = None  # the last failure was this user's login refused: keep saying so


class Pool:
    """One Connection per key (a cluster and a cluster user) while it is used, closed after `max_idle`
    seconds without use; failed connects back off exponentially (1 s, 2 s, 4 s … capped at
    `max_backoff`) so a dead login node, or a user the login node refuses, is not hammered."""

    def __init__(self, max_backoff: float = 60.0, max_idle: float = 300.0) -> None:
        self.max_idle = max_idle
        self._connections: dict[object, Connection] = {}
        self._backoff: dict[object, _Backoff] = {}
        self._lock = threading.Lock()
        self.max_backoff = max_backoff

    def get(self, key: object, make: Connection) -> Connection:
        """The cached connection for key, replaced when its settings changed (host, key, pinned key)."""
        with self._lock:
            current = self._connections.get(key)
            if current is None or current.settings() != make.settings():
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
            if backoff.refused is not None:
                # The same words as the refusal itself: it is about this user, not the host.
                raise type(backoff.refused)(str(backoff.refused))
            raise ClusterUnreachable(f"retrying {make.host} in {backoff.retry_at - now:.0f} s")
        try:
            connection.open()
        except SlurmError as error:
            backoff.failures += 1
            backoff.retry_at = now + min(self.max_backoff, 2 ** (backoff.failures - 1))
            backoff.host_key_mismatch = str(error) if isinstance(error, HostKeyMismatch) else ""
            backoff.refused = error if isinstance(error, AuthenticationFailed | CredentialError) else None
            raise
        backoff.failures = 0
        backoff.retry_at = 0.0
        backoff.host_key_mismatch = ""
        backoff.refused = None
        return connection

    def reset_backoff(self, key: object) -> None:
        self._backoff.pop(key, None)

    def reset_backoff_where(self, matches: Callable[[object], bool]) -> None:
        """Forget the failures of every key that matches (e.g. all of one cluster's users)."""
        with self._lock:
            for key in [k for k in self._backoff if matches(k)]:
                del self._backoff[key]

    def close_idle(self, now: float | None = None) -> int:
        """Close the connections unused for `max_idle` seconds; how many were closed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            idle = [k for k, c in self._connections.items() if now - c.last_used > self.max_idle]
            for key in idle:
                self._connections.pop(key).close()
            return len(idle)

    @property
    def size(self) -> int:
        """How many connections are held (an empty pool is still a pool: no `__len__`)."""
        return len(self._connections)

    def close_all(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()
            self._backoff.clear()


pool = Pool()
