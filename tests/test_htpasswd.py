"""The nginx password file entry of the monitoring UIs (plugins/filter/htpasswd.py)."""

import importlib.util

import bcrypt
import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("htpasswd", ROOT / "plugins" / "filter" / "htpasswd.py")
htpasswd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(htpasswd)


def test_entry_is_bcrypt_that_crypt_checks_and_holds_no_password():
    entry = htpasswd.htpasswd_bcrypt("s3cret-password", "admin")
    user, hashed = entry.split(":", 1)
    assert user == "admin" and hashed.startswith(f"$2b${htpasswd.ROUNDS:02d}$")
    assert bcrypt.checkpw(b"s3cret-password", hashed.encode())
    assert "s3cret" not in entry


def test_the_current_entry_is_kept_while_it_matches_so_a_re_run_changes_nothing():
    current = htpasswd.htpasswd_bcrypt("s3cret-password", "admin")
    other_user = htpasswd.htpasswd_bcrypt("s3cret-password", "viewer")
    text = f"{other_user}\n{current}\n"
    assert htpasswd.htpasswd_bcrypt("s3cret-password", "admin", text) == current
    # a new password, another user's entry, an old {SSHA} entry or a damaged one: a new entry
    for password, found in (("new-password", text), ("s3cret-password", other_user),
                            ("s3cret-password", "admin:{SSHA}abcd"), ("s3cret-password", "admin:$2b$10$short")):
        entry = htpasswd.htpasswd_bcrypt(password, "admin", found)
        assert entry != current and bcrypt.checkpw(password.encode(), entry.split(":", 1)[1].encode())


@pytest.mark.parametrize("user", ["", "a:b"])
def test_a_user_name_nginx_cannot_read_is_refused(user):
    with pytest.raises(ValueError, match="without ':'"):
        htpasswd.htpasswd_bcrypt("pw", user)
