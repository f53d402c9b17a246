"""Who the portal is on a cluster: the service account, or the member whose job it is.

A cluster's `auth_mode` says how a member's own cluster user is reached:

1. `certificate` (the default): for each connection the portal makes a key pair in memory and signs a
   user certificate for principal = the member's cluster username, valid for minutes
   (`ssh.Certificate`), with the user CA key named by the `SSH_USER_CA_KEY` setting (a file on the
   portal host; never in the database, never logged).
2. `member_keys`: the member's own private key, uploaded once and kept encrypted with the
   `KEY_ENCRYPTION_KEY` setting (Fernet); decrypted in memory only to log in.
3. `shared` (unsafe): everything runs as the service account.

The service account (`Cluster.username`, its key file) tracks every job, keeps reservations and Slurm
associations and carries out an admin's cancel of someone else's job. Connections are pooled per
(cluster, user) by `ssh.Pool`; a login as a member that succeeds is recorded on their
`ClusterAccount` (and ticks their onboarding step), one that is refused is recorded with the reason.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.models import Member
from scheduler import ssh
from scheduler.models import AccessEvent, Cluster, ClusterAccount

VERIFY_EVERY_SECONDS = 3600  # a working login is written down at most this often per account


class AccountError(Exception):
    """A member cannot act on a cluster now; the message says why and whom to ask."""


# --- settings ----------------------------------------------------------------------------------------


def ca_key_path() -> Path | None:
    value = str(getattr(settings, "SSH_USER_CA_KEY", "") or "")
    return Path(value) if value else None


def ca_problem() -> str:
    """Why certificates cannot be signed now ("" when the CA key is readable and usable)."""
    path = ca_key_path()
    if path is None:
        return _("No SSH user CA key is configured on the portal (setting SSH_USER_CA_KEY).")
    try:
        ssh.load_certificate_authority(path)
    except ssh.CredentialError as error:
        return str(error)
    return ""


def _fernet() -> Fernet:
    secret = str(getattr(settings, "KEY_ENCRYPTION_KEY", "") or "")
    if not secret:
        raise AccountError(
            _("The portal has no KEY_ENCRYPTION_KEY set, so it cannot keep members' keys. Ask an admin.")
        )
    # Any string from the environment: a Fernet key is derived from it (32 bytes, urlsafe base64).
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def encrypt_key(text: str) -> bytes:
    return _fernet().encrypt(text.encode())


def decrypt_key(token: bytes | memoryview) -> str:
    try:
        return _fernet().decrypt(bytes(token)).decode()
    except InvalidToken as error:
        raise AccountError(
            _("The stored key cannot be decrypted (was KEY_ENCRYPTION_KEY changed?). Upload it again.")
        ) from error


# --- who runs a member's jobs --------------------------------------------------------------------------


def account_for(member: Member, cluster: Cluster) -> ClusterAccount | None:
    return ClusterAccount.objects.filter(member=member, cluster=cluster).first()


def cluster_user_for(member: Member, cluster: Cluster) -> str:
    """The cluster user a member's new job runs as; AccountError says why there is none."""
    if cluster.is_shared:
        return cluster.username
    account = account_for(member, cluster)
    if account is None:
        raise AccountError(
            _(
                "You have no account on %(cluster)s in the portal yet, so nothing can run there as you. "
                "Ask the management team to add your cluster username (your profile shows it once set)."
            )
            % {"cluster": cluster.name}
        )
    if cluster.auth_mode == Cluster.AuthMode.MEMBER_KEYS and not account.has_key:
        raise AccountError(
            _(
                "%(cluster)s logs in with members' own keys, and you have not uploaded yours: upload it "
                "on your profile page."
            )
            % {"cluster": cluster.name}
        )
    return account.username


def credential_for(cluster: Cluster, account: ClusterAccount) -> ssh.Credential:
    if cluster.auth_mode == Cluster.AuthMode.MEMBER_KEYS:
        if not account.has_key:
            raise AccountError(_("No key uploaded for %(user)s.") % {"user": account.username})
        return ssh.StoredKey(decrypt_key(account.encrypted_key), account.key_fingerprint)
    path = ca_key_path()
    if path is None:
        raise AccountError(ca_problem())
    return ssh.Certificate(path, account.username, lifetime=float(settings.SSH_CERTIFICATE_SECONDS))


def service_connection(cluster: Cluster) -> ssh.Connection:
    """The service account's connection (its key file), unopened."""
    return ssh.Connection(
        host=cluster.host,
        port=cluster.port,
        username=cluster.username,
        key_path=cluster.private_key_file(),
        host_key=cluster.host_key,
    )


def pool_key(cluster: Cluster, username: str) -> tuple[int, str]:
    return (cluster.pk, username)


def connect_service(cluster: Cluster, pool: ssh.Pool) -> ssh.Connection:
    return pool.connect(pool_key(cluster, cluster.username), service_connection(cluster))


def connect_user(cluster: Cluster, username: str, pool: ssh.Pool) -> ssh.Connection:
    """An open connection as `username` (the service account's own in the shared mode, or for the
    service account itself). A refused login raises AccountError and is recorded on the account; an
    unreachable host raises ssh.ClusterUnreachable as for the service account."""
    if cluster.is_shared or username == cluster.username:
        return connect_service(cluster, pool)
    account = ClusterAccount.objects.filter(cluster=cluster, username=username).first()
    if account is None:
        raise AccountError(
            _("No member has the cluster user %(user)s on %(cluster)s any more.")
            % {"user": username, "cluster": cluster.name}
        )
    return connect_account(account, pool)


def connect_account(account: ClusterAccount, pool: ssh.Pool) -> ssh.Connection:
    cluster = account.cluster
    key = pool_key(cluster, account.username)
    try:
        make = ssh.Connection(
            host=cluster.host,
            port=cluster.port,
            username=account.username,
            host_key=cluster.host_key,
            credential=credential_for(cluster, account),
        )
        fresh = not pool.get(key, make).is_open
        connection = pool.connect(key, make)
    except AccountError as error:
        _record_failure(account, str(error))
        raise
    except (ssh.AuthenticationFailed, ssh.CredentialError) as error:
        message = str(error)
        if isinstance(error, ssh.AuthenticationFailed) and cluster.auth_mode == Cluster.AuthMode.CERTIFICATE:
            message += " " + _(
                "Check that the user exists there and that its sshd trusts the portal's user CA "
                "(TrustedUserCAKeys)."
            )
        _record_failure(account, message)
        raise AccountError(message) from error
    if fresh:
        record_login(account)
    return connection


def record_login(account: ClusterAccount) -> None:
    """The portal logged in as this account: its onboarding step is done (written at most hourly)."""
    now = timezone.now()
    recent = account.verified_at is not None and (now - account.verified_at).total_seconds() < (
        VERIFY_EVERY_SECONDS
    )
    if recent and not account.last_error:
        return
    with transaction.atomic():
        ClusterAccount.objects.filter(pk=account.pk).update(verified_at=now, last_error="")
        if account.verified_at is None or account.last_error:
            AccessEvent.objects.create(
                cluster=account.cluster,
                member=account.member,
                kind=AccessEvent.Kind.LOGIN_OK,
                message=f"logged in as {account.username}",
            )
        Member.objects.filter(pk=account.member_id, has_cluster_account=False).update(
            has_cluster_account=True
        )
    account.verified_at, account.last_error = now, ""


def _record_failure(account: ClusterAccount, message: str) -> None:
    message = message[:500]
    if account.last_error == message:
        return  # said once; the pool backs off, the page shows it
    with transaction.atomic():
        ClusterAccount.objects.filter(pk=account.pk).update(last_error=message)
        AccessEvent.objects.create(
            cluster=account.cluster,
            member=account.member,
            kind=AccessEvent.Kind.LOGIN_FAILED,
            message=message,
        )
    account.last_error = message
