"""The nginx password file entry of the monitoring UIs (plugins/filter/htpasswd.py)."""

import base64
import hashlib
import importlib.util

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("htpasswd", ROOT / "plugins" / "filter" / "htpasswd.py")
htpasswd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(htpasswd)


def test_entry_is_salted_sha1_that_nginx_checks_and_the_same_on_every_run():
    entry = htpasswd.htpasswd_ssha("s3cret-password", "admin")
    user, scheme_hash = entry.split(":", 1)
    assert user == "admin" and scheme_hash.startswith("{SSHA}")
    raw = base64.b64decode(scheme_hash.removeprefix("{SSHA}"))
    digest, salt = raw[:20], raw[20:]
    # nginx's check: SHA-1 of the password followed by the salt, which follows the digest.
    assert len(salt) == 8 and hashlib.sha1(b"s3cret-password" + salt).digest() == digest
    assert htpasswd.htpasswd_ssha("s3cret-password", "admin") == entry
    assert htpasswd.htpasswd_ssha("other-password", "admin") != entry
    assert "s3cret" not in entry


@pytest.mark.parametrize("user", ["", "a:b"])
def test_a_user_name_nginx_cannot_read_is_refused(user):
    with pytest.raises(ValueError, match="without ':'"):
        htpasswd.htpasswd_ssha("pw", user)
