"""plugins/filter/redis_acl.py: the users file's lines and the ACL SETUSER commands that apply them to a running
Redis without disconnecting its clients. Pure logic, no lab (the lab runs them: every site.yml run on a broker)."""

import hashlib
import importlib.util

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("redis_acl", ROOT / "plugins" / "filter" / "redis_acl.py")
acl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(acl)

WORKER = {"user": "airflow-worker", "password": "w0rkerPassw0rd16", "keys": ["default*", "_kombu.*"],
          "channels": ["/0.celery.pidbox"], "commands": "-@all +@read\n +@write -@admin"}
MONITOR = {"user": "airflow-monitor", "password": "m0nitorPassw0rd16", "keys": ["*"], "channels": [],
           "commands": "-@all +@read +info"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_lines_have_the_default_user_off_admin_then_each_user_and_no_password():
    lines = acl.redis_acl_lines([WORKER, MONITOR], "adminPassw0rd1234")
    assert lines == [
        "user default off resetpass resetkeys resetchannels -@all",
        f"user admin on #{sha('adminPassw0rd1234')} ~* &* +@all",
        f"user airflow-worker on #{sha('w0rkerPassw0rd16')} resetkeys ~default* ~_kombu.* resetchannels "
        "&/0.celery.pidbox -@all +@read +@write -@admin",
        f"user airflow-monitor on #{sha('m0nitorPassw0rd16')} resetkeys ~* resetchannels -@all +@read +info",
    ]
    assert not any("Passw0rd" in line for line in lines)


def test_a_kept_default_user_replaces_the_default_off_line_and_comes_first():
    kept = ["user default on #abc ~* &* +@all", "user  airflow-old on #123 ~q*  -@all"]
    lines = acl.redis_acl_lines([], "adminPassw0rd1234", kept)
    assert lines[:2] == ["user default on #abc ~* &* +@all", "user airflow-old on #123 ~q* -@all"]
    assert acl.DEFAULT_OFF not in lines and acl.redis_acl_names(lines) == ["default", "airflow-old", "admin"]


def test_each_line_becomes_one_setuser_that_resets_the_user_first():
    lines = acl.redis_acl_lines([MONITOR], "adminPassw0rd1234")
    assert acl.redis_acl_setuser(lines) == [
        "ACL SETUSER default reset off resetpass resetkeys resetchannels -@all",
        f"ACL SETUSER admin reset on #{sha('adminPassw0rd1234')} ~* &* +@all",
        f"ACL SETUSER airflow-monitor reset on #{sha('m0nitorPassw0rd16')} resetkeys ~* resetchannels -@all +@read "
        "+info",
    ]


def test_a_line_that_is_not_a_user_is_refused_without_showing_its_digest():
    with pytest.raises(ValueError) as err:
        acl.redis_acl_setuser(["admin on #0123abcd ~*"])
    assert "0123abcd" not in str(err.value)


def test_each_worker_has_its_own_password_derived_from_the_workers_secret():
    one, two = acl.redis_worker_user("worker1", "s3cret-base"), acl.redis_worker_user("worker2", "s3cret-base")
    assert one["user"] == "airflow-worker-worker1" and two["user"] == "airflow-worker-worker2"
    assert len(one["password"]) == 43 and one["password"] != two["password"]
    assert acl.redis_worker_user("worker1", "s3cret-base") == one  # the same on every run
    assert acl.redis_worker_user("worker1", "rotated") != one  # rotating the secret changes it
    assert "s3cret" not in one["password"]
