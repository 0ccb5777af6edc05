"""LiveRamp destinations (reference 3.1): the region picks the port (US 22, AU 2222, EU 4222) and the login (EU/AU
by SSH key only), files go under /uploads/<subfolder>; optional PGP encryption with LiveRamp's public key and
subkey id (`<name>.psv.gpg`, the encrypted bytes checked on the remote), decrypted here with the private key."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import gnupg
import pytest
from django_tenants.utils import schema_context

from activation.delivery import _sftp_target, start_delivery
from activation.models import DeliveryStatus
from activation.services import destination_create, destination_update
from tenants.services import ServiceError
from tests.activation.conftest import person
from tests.activation.sftp_server import PASSWORD, USER
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db


def _key_pair() -> tuple[str, str]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key.export_private_key().decode(), key.export_public_key().decode()


def _lr(sftp: Any, audiences: list[Any], *, name: str = "LiveRamp", **data: Any) -> Any:
    base = {"host": "127.0.0.1", "port": sftp.port, "username": USER, "remote_dir": sftp.remote_dir,
            "host_key": sftp.host_key_line}  # fmt: skip
    return destination_create(actor=None, name=name, kind="liveramp", data={**base, **data},
                              audience_ids=[a.pk for a in audiences])  # fmt: skip


def test_region_sets_the_port_and_the_upload_folder(acme: Any, sftp: Any) -> None:
    private, _ = _key_pair()
    with schema_context(acme.schema_name):
        us = destination_create(actor=None, name="LR US", kind="liveramp",
                                data={"username": "acme", "host_key": sftp.host_key_line,
                                      "credentials": {"password": "pw"}})  # fmt: skip
        assert (us.host, us.port, us.region, us.remote_dir) == ("files.liveramp.com", 22, "us", "/uploads")
        eu = destination_create(actor=None, name="LR EU", kind="liveramp",
                                data={"username": "acme", "host_key": sftp.host_key_line, "region": "eu",
                                      "remote_dir": "acme-devices", "credentials": {"private_key": private}})  # fmt: skip
        assert (eu.port, eu.remote_dir) == (4222, "/uploads/acme-devices")
        assert destination_update(actor=None, destination=eu, data={"region": "au"}).port == 2222
        assert destination_update(actor=None, destination=eu, data={"region": "us"}).port == 22
        target = _sftp_target(destination_update(actor=None, destination=eu, data={"region": "eu"}))
        assert (target.port, target.key_only) == (4222, True)
        assert _sftp_target(us).key_only is False
        # a port that is none of LiveRamp's is an explicit override (a proxy, this test server) and is kept
        assert destination_update(actor=None, destination=eu, data={"port": sftp.port}).port == sftp.port
        with pytest.raises(ServiceError, match=r"under /uploads/<subfolder>"):
            destination_update(actor=None, destination=us, data={"remote_dir": "/home/acme"})
        with pytest.raises(ServiceError, match="region must be one of"):
            destination_update(actor=None, destination=us, data={"region": "mars"})


def test_eu_and_au_without_an_ssh_key_are_refused_with_a_clear_error(acme: Any, sftp: Any, login: Any,
                                                                      super_admin: Any) -> None:  # fmt: skip
    with schema_context(acme.schema_name):
        for region, port in (("eu", 4222), ("au", 2222)):
            with pytest.raises(ServiceError, match=rf"EU|AU.*port {port}.*SSH keys only"):
                destination_create(actor=None, name=f"LR {region}", kind="liveramp",
                                   data={"username": "acme", "host_key": sftp.host_key_line, "region": region,
                                         "credentials": {"password": "pw"}})  # fmt: skip
        us = destination_create(actor=None, name="LR pw", kind="liveramp",
                                data={"username": "acme", "host_key": sftp.host_key_line,
                                      "credentials": {"password": "pw"}})  # fmt: skip
        with pytest.raises(ServiceError, match="SSH keys only"):
            destination_update(actor=None, destination=us, data={"region": "eu"})
        with pytest.raises(ServiceError, match="not a private key"):
            destination_update(actor=None, destination=us, data={"credentials": {"private_key": "garbage"}})
    answer = login(super_admin).post("/o/acme/api/v1/destinations", {
        "name": "LR API EU", "kind": "liveramp", "region": "eu", "username": "acme",
        "host_key": sftp.host_key_line, "credentials": {"password": "pw"},
    }, content_type="application/json")  # fmt: skip
    assert answer.status_code == 400 and "SSH keys only" in str(answer.json())


def test_eu_delivery_logs_in_with_the_key_only(acme: Any, sftp: Any) -> None:
    """Against the asyncssh server made key-only (as LiveRamp's EU endpoint): the delivery logs in with the key,
    and a stored password is never offered to an EU/AU endpoint."""
    private, public = _key_pair()
    sftp.authorized_keys = [asyncssh.import_public_key(public)]
    sftp.passwords = False
    with schema_context(acme.schema_name):
        audience = make_imported("EU devices", [person(i) for i in range(30)])
        dest = _lr(sftp, [audience], region="eu", credentials={"private_key": private, "password": PASSWORD})
        assert dest.port == sftp.port  # the test server's port overrides 4222
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT, d.error
        assert sftp.logins and set(sftp.logins) == {"publickey"}
        assert {p.name for p in sftp.local_dir.iterdir()} == {d.files[0]["name"]}
        # a key the server does not know: refused (no fallback to the password)
        other, _ = _key_pair()
        destination_update(actor=None, destination=dest, data={"credentials": {"private_key": other}})
        sftp.passwords = True
        sftp.logins.clear()
        again = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert again.status == DeliveryStatus.FAILED and "refused the login" in again.error
        assert "password" not in sftp.logins


def test_us_delivery_logs_in_with_the_password(acme: Any, sftp: Any) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("US devices", [person(i) for i in range(30)])
        dest = _lr(sftp, [audience], credentials={"password": PASSWORD})
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT, d.error
        assert sftp.logins and set(sftp.logins) == {"password"}  # the pre-upload and the push log in


# --- PGP ---------------------------------------------------------------------------------------------------
class PgpKeys:
    def __init__(self, home: str) -> None:
        self.gpg = gnupg.GPG(gnupghome=home)
        params = self.gpg.gen_key_input(key_type="EDDSA", key_curve="ed25519", subkey_type="ECDH",
                                        subkey_curve="cv25519", subkey_usage="encrypt", name_email="lr@test",
                                        no_protection=True, expire_date=0)  # fmt: skip
        self.fingerprint = self.gpg.gen_key(params).fingerprint
        # a second encryption subkey: gpg would pick the newest, the destination names the first
        subprocess.run(["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                        "--quick-add-key", self.fingerprint, "cv25519", "encr", "never"],
                       check=True, capture_output=True)  # fmt: skip
        (key,) = self.gpg.list_keys()
        self.subkeys = [s[0] for s in key["subkeys"] if "e" in s[1]]
        self.public = self.gpg.export_keys(self.fingerprint)
        self.private = self.gpg.export_keys(self.fingerprint, secret=True, expect_passphrase=False)


@pytest.fixture(scope="module")
def pgp_keys() -> Iterator[PgpKeys]:
    home = tempfile.mkdtemp(prefix="p360-test-gpg-")
    try:
        yield PgpKeys(home)
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False, capture_output=True)
        import shutil

        shutil.rmtree(home, ignore_errors=True)


def test_pgp_encrypted_delivery_decrypts_to_the_plain_file(acme: Any, sftp: Any, pgp_keys: PgpKeys) -> None:
    assert len(pgp_keys.subkeys) == 2
    chosen = pgp_keys.subkeys[0]
    with schema_context(acme.schema_name):
        audience = make_imported("Encrypted devices", [person(i) for i in range(40)])
        dest = _lr(sftp, [audience], credentials={"password": PASSWORD}, pgp_public_key=pgp_keys.public,
                   pgp_subkey_id=f"0x{chosen.lower()}")  # fmt: skip
        assert dest.pgp_subkey_id == chosen and dest.pgp_fingerprint == pgp_keys.fingerprint
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT, d.error
        (info,) = d.files
        assert info["name"] == info["plain_name"] + ".gpg" and info["plain_name"].endswith(".psv")
        remote = sftp.local_dir / info["name"]
        assert {p.name for p in sftp.local_dir.iterdir()} == {info["name"]}  # no .part, no plain file
        data = remote.read_bytes()
        # the ledger's checksum and size are those of the encrypted bytes on the remote
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]
        assert b"advertising_id" not in data  # not plain text
        decrypted = pgp_keys.gpg.decrypt(data)
        assert decrypted.ok, decrypted.status
        assert decrypted.key_id == chosen  # encrypted to the named subkey, not gpg's preferred one
        plain = decrypted.data
        assert hashlib.sha256(plain).hexdigest() == info["plain_sha256"] and len(plain) == info["plain_bytes"]
        lines = plain.decode().splitlines()
        assert lines[0].startswith("advertising_id|") and len(lines) == 1 + d.rows
        # the dry run shows the diff without encrypting anything
        dry = start_delivery(destination=dest, actor=None, dry_run=True)
        assert dry.status == DeliveryStatus.DRY_RUN and dry.files[0]["name"].endswith(".psv")


def test_pgp_key_is_checked_when_saved(acme: Any, sftp: Any, pgp_keys: PgpKeys, tmp_path: Path) -> None:
    with schema_context(acme.schema_name):
        dest = _lr(sftp, [], credentials={"password": PASSWORD})
        for data, message in (
            ({"pgp_public_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nnope\n"}, "could not be read"),
            ({"pgp_public_key": pgp_keys.private}, "private key"),
            ({"pgp_public_key": pgp_keys.public, "pgp_subkey_id": "0123456789ABCDEF"}, "no encryption subkey"),
            ({"pgp_public_key": pgp_keys.public, "pgp_subkey_id": "xyz"}, "16 hexadecimal digits"),
            ({"pgp_public_key": "", "pgp_subkey_id": pgp_keys.subkeys[0]}, "needs the PGP public key"),
        ):
            with pytest.raises(ServiceError, match=message):
                destination_update(actor=None, destination=dest, data=data)
            dest.refresh_from_db()  # the refused values stay on the instance, never in the database
        saved = destination_update(actor=None, destination=dest, data={"pgp_public_key": pgp_keys.public})
        assert saved.pgp_fingerprint == pgp_keys.fingerprint and saved.pgp_subkey_id == ""
        with pytest.raises(ServiceError, match="LiveRamp destinations only"):
            destination_create(actor=None, name="S3 pgp", kind="s3",
                               data={"bucket": "b", "pgp_public_key": pgp_keys.public})  # fmt: skip


def test_org_admin_form_shows_the_region_rule_as_a_form_error(login: Any, super_admin: Any, acme: Any,
                                                              sftp: Any) -> None:  # fmt: skip
    form = {"name": "LR admin EU", "kind": "liveramp", "enabled": "on", "region": "eu", "host": "files.liveramp.com",
            "port": "22", "username": "acme", "remote_dir": "/uploads/acme", "host_key": sftp.host_key_line,
            "password": "admin-pw-Tt5"}  # fmt: skip
    client = login(super_admin)
    response = client.post("/o/acme/admin/activation/destination/add/", form)
    html = response.content.decode()
    assert response.status_code == 200 and "takes SSH keys only" in html and "admin-pw-Tt5" not in html
    private, _ = _key_pair()
    response = client.post("/o/acme/admin/activation/destination/add/", {**form, "private_key": private})
    assert response.status_code == 302
    with schema_context(acme.schema_name):
        from activation.models import Destination

        saved = Destination.objects.get(name="LR admin EU")
        assert (saved.region, saved.port) == ("eu", 4222)  # the port followed the region
