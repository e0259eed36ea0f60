"""The environment's lock of the team's extra packages: its fingerprint and header
(plugins/module_utils/extras_lock.py), the settings `airflow-cluster lock` reads, its reading of uv's failures
(airflow_cluster/lock.py, on uv 0.13.8's own words), and one real run of the command against the package index."""

import hashlib
import importlib.util
import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from airflow_cluster import inventory as inv
from airflow_cluster import lock

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("extras_lock", ROOT / "plugins" / "module_utils" / "extras_lock.py")
extras = importlib.util.module_from_spec(spec)
spec.loader.exec_module(extras)
PROJECT_LOCK = ROOT / "files" / "locks" / "airflow-3.3.2-py3.11.txt"
PINS = extras.pins(PROJECT_LOCK.read_text())

# uv 0.13.8's standard error, captured from `uv pip compile files/locks/airflow-3.3.2.in - --constraint
# files/locks/airflow-3.3.2-py3.11.txt --python-version 3.11.2 --python-platform x86_64-manylinux_2_28` with the
# requirement on standard input (the first with --native-tls, hence its warning).
UV_DIRECT = """\
warning: The `--native-tls` flag is deprecated and will be removed in a future release. Use `--system-certs` instead.
error: No solution found when resolving dependencies
  cause: Because you require requests>=99 and requests==2.34.2, we can conclude that your requirements are unsatisfiable.
"""  # noqa: E501
UV_TRANSITIVE = """\
error: No solution found when resolving dependencies
  cause: Because botocore==1.29.0 depends on urllib3>=1.25.4,<1.27 and urllib3==2.8.0, we can conclude that botocore==1.29.0 cannot be used.
         And because you require botocore==1.29.0, we can conclude that your requirements are unsatisfiable.
"""  # noqa: E501 (uv's lines as they are)
UV_NOT_FOUND = """\
error: No solution found when resolving dependencies
  cause: Because our-operators was not found in the package registry and you require our-operators==1.4.0, we can conclude that your requirements are unsatisfiable.
"""  # noqa: E501
UV_NO_SUCH_VERSION = """\
error: No solution found when resolving dependencies
  cause: Because only apache-airflow-providers-amazon<=9.39.0 is available and you require apache-airflow-providers-amazon>=99, we can conclude that your requirements are unsatisfiable.
"""  # noqa: E501


# ---------------------------------------------------------------- fingerprint and header


def test_the_fingerprint_is_the_sha256_of_a_canonical_json():
    digest = extras.fingerprint("3.3.2", "ab" * 32, ["b>=1", "a"], [("w-1-py3-none-any.whl", "cd" * 32)])
    canonical = json.dumps({"airflow_version": "3.3.2", "format": 1, "project_lock_sha256": "ab" * 32,
                            "requirements": ["a", "b>=1"], "wheels": [["w-1-py3-none-any.whl", "cd" * 32]]},
                           sort_keys=True, separators=(",", ":"))
    assert digest == hashlib.sha256(canonical.encode()).hexdigest()


def test_the_fingerprint_ignores_order_and_spaces_and_nothing_else():
    base = ("3.3.2", "ab" * 32, ["apache-airflow-providers-http", "ours==1.0"],
            [("ours-1.0-py3-none-any.whl", "cd" * 32)])
    same = extras.fingerprint(*base)
    assert extras.fingerprint("3.3.2", "ab" * 32, [" ours==1.0 ", "apache-airflow-providers-http"], base[3]) == same
    changed = [
        ("3.3.1", *base[1:]),
        ("3.3.2", "ef" * 32, *base[2:]),
        (*base[:2], ["apache-airflow-providers-http"], base[3]),
        (*base[:2], ["apache-airflow-providers-http", "ours==1.1"], base[3]),
        (*base[:3], []),
        (*base[:3], [("ours-1.0-py3-none-any.whl", "ef" * 32)]),
        (*base[:3], [("ours-1.0.1-py3-none-any.whl", "cd" * 32)]),
    ]
    digests = {extras.fingerprint(*args) for args in changed}
    assert same not in digests and len(digests) == len(changed)


def test_the_current_fingerprint_reads_the_project_lock_and_each_wheel(tmp_path):
    (tmp_path / "ours-1.0-py3-none-any.whl").write_bytes(b"one")
    (tmp_path / "notes.txt").write_text("not a wheel")
    (tmp_path / "sub.whl").mkdir()  # not a file
    assert extras.wheel_files(str(tmp_path)) == ["ours-1.0-py3-none-any.whl"]
    assert extras.wheel_files("") == extras.wheel_files(str(tmp_path / "nowhere")) == []
    expected = extras.fingerprint("3.3.2", hashlib.sha256(PROJECT_LOCK.read_bytes()).hexdigest(), ["ours==1.0"],
                                  [("ours-1.0-py3-none-any.whl", hashlib.sha256(b"one").hexdigest())])
    assert extras.current_fingerprint("3.3.2", str(PROJECT_LOCK), ["ours==1.0"], str(tmp_path)) == expected


def test_the_header_is_read_back():
    digest = "0123456789abcdef" * 4
    head = extras.header(digest, "airflow-cluster lock -i inventory/prod", "3.11.2",
                         "files/locks/airflow-3.3.2-py3.11.txt")
    assert head.splitlines() == [
        f"# airflow-cluster lock inputs: sha256={digest}",
        "# Made by `airflow-cluster lock -i inventory/prod` for CPython 3.11.2 (x86_64-manylinux_2_28): the project's "
        "lock",
        "# files/locks/airflow-3.3.2-py3.11.txt, pins unchanged, plus airflow_extra_requirements and "
        "airflow_extra_wheels.",
        "# Do not edit: change those settings and run the command again (a deploy refuses a lock whose inputs "
        "changed).",
    ]
    lock_text = head + "# This file was autogenerated by uv via the following command:\na2wsgi==1.10.10\n"
    assert extras.read_fingerprint(lock_text) == digest
    assert extras.read_fingerprint(PROJECT_LOCK.read_text()) is None  # the project's own lock has none
    assert extras.read_fingerprint("a2wsgi==1.10.10\n" + head) is None  # only in the leading comments
    assert extras.read_fingerprint(head.replace(digest, digest[:-1])) is None  # 63 digits


def test_pins_are_read_in_both_annotation_styles():
    text = ("# header\na2wsgi==1.10.10           # via apache-airflow-core\napache-airflow==3.3.2\n    # via\n"
            "    #   -r files/locks/airflow-3.3.2.in\nZope.Interface==7.0 ; python_version >= '3'\n")
    assert extras.pins(text) == {"a2wsgi": "1.10.10", "apache-airflow": "3.3.2", "zope-interface": "7.0"}
    assert len(PINS) == 180 and PINS["requests"] == "2.34.2"


@pytest.mark.parametrize(("line", "error"), [
    ("apache-airflow-providers-http>=5.0", ""),
    ("requests>=", "Expected semicolon (after name with no version specifier) or end (at character 9)"),
    ("-r other.txt", "Expected package name at the start of dependency specifier (at character 1)"),
    (3, "it is not a string"),
])
def test_requirement_errors(line, error):
    assert extras.requirement_error(line) == error


def test_the_makefile_locks_the_same_pythons():
    makefile = (ROOT / "Makefile").read_text()
    line = next(ln for ln in makefile.splitlines() if ln.startswith("LOCK_PYTHONS ?="))
    assert line.split("?=")[1].split() == sorted(extras.node_pythons.values())


# ---------------------------------------------------------------- uv's failures in one message


def test_a_requirement_against_a_pin_names_both():
    message = lock.conflict_message(UV_DIRECT, ["apache-airflow-providers-http", "requests>=99"], PINS, "3.11",
                                    "files/locks/airflow-3.3.2-py3.11.txt")
    assert message == (
        "airflow_extra_requirements cannot be locked for Python 3.11 (CPython 3.11.2): requests>=99 needs another "
        "version of requests than the project's lock pins (requests==2.34.2 in files/locks/airflow-3.3.2-py3.11.txt), "
        "and those pins never move. uv says:\n"
        "  Because you require requests>=99 and requests==2.34.2, we can conclude that your requirements are "
        "unsatisfiable.\n"
        "Fix: change or drop requests>=99 (a version that works with requests==2.34.2), then run the command again. "
        "Nothing was written.")


def test_a_dependency_against_a_pin_names_the_requirement_and_the_pin():
    message = lock.conflict_message(UV_TRANSITIVE, ["apache-airflow-providers-http", "botocore==1.29.0"], PINS, "3.11",
                                    "files/locks/airflow-3.3.2-py3.11.txt")
    first, *explained, fix = message.splitlines()
    assert first.startswith("airflow_extra_requirements cannot be locked for Python 3.11 (CPython 3.11.2): "
                            "botocore==1.29.0 needs another version of urllib3 than the project's lock pins "
                            "(urllib3==2.8.0 in files/locks/airflow-3.3.2-py3.11.txt)")
    assert explained == [
        "  Because botocore==1.29.0 depends on urllib3>=1.25.4,<1.27 and urllib3==2.8.0, we can conclude that "
        "botocore==1.29.0 cannot be used.",
        "  And because you require botocore==1.29.0, we can conclude that your requirements are unsatisfiable."]
    assert fix.startswith("Fix: change or drop botocore==1.29.0 (a version that works with urllib3==2.8.0)")


@pytest.mark.parametrize(("stderr", "requirement"), [(UV_NOT_FOUND, "our-operators==1.4.0"),
                                                     (UV_NO_SUCH_VERSION, "apache-airflow-providers-amazon>=99")])
def test_other_failures_give_uvs_explanation(stderr, requirement):
    message = lock.conflict_message(stderr, ["apache-airflow-providers-http", requirement], PINS, "3.13",
                                    "files/locks/airflow-3.3.2-py3.13.txt")
    head, explained, fix = message.splitlines()
    assert head == "airflow_extra_requirements cannot be locked for Python 3.13 (CPython 3.13.5): uv says:"
    assert explained == "  " + stderr.splitlines()[1].strip().removeprefix("cause: ")
    assert fix.startswith(f"Fix: change {requirement} so that uv can resolve it")
    assert "pins never move" not in message and "No solution found" not in message


def test_uvs_warnings_are_left_out():
    assert lock.explanation(UV_DIRECT) == [
        "Because you require requests>=99 and requests==2.34.2, we can conclude that your requirements are "
        "unsatisfiable."]
    assert lock.explanation("error: Failed to fetch: `https://pypi.org/simple/x/`\n  Caused by: timed out\n") == [
        "error: Failed to fetch: `https://pypi.org/simple/x/`", "Caused by: timed out"]


# ---------------------------------------------------------------- the inventory's settings


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HOSTS = ("all:\n  vars:\n    ansible_user: root\n{vars}  children:\n    airflow_master:\n      hosts:\n        m:\n"
         "    airflow_workers:\n      hosts:\n        w1:\n")


def test_settings_come_from_the_hosts_file_then_group_vars_all(tmp_path):
    names = ("airflow_version", "airflow_extra_requirements", "airflow_extra_wheels", "airflow_extras_lock_dir")
    write(tmp_path / "hosts.yml", HOSTS.format(vars="    airflow_extra_requirements: [a, b]\n    "
                                                    "airflow_extra_wheels: '{{ inventory_dir }}/wheels'\n"))
    assert inv.read_settings(tmp_path, names) == {
        "airflow_version": "3.3.2", "airflow_extra_requirements": ["a", "b"],
        "airflow_extra_wheels": f"{tmp_path}/wheels", "airflow_extras_lock_dir": f"{tmp_path}/locks"}
    write(tmp_path / "group_vars" / "all" / "packages.yml", "airflow_extra_requirements:\n  - c  # ours\n")
    write(tmp_path / "group_vars" / "all" / "vault.yml", "$ANSIBLE_VAULT;1.1;AES256\n3132\n")
    assert inv.read_settings(tmp_path / "hosts.yml", names)["airflow_extra_requirements"] == ["c"]
    write(tmp_path / "group_vars" / "airflow_workers.yml", "airflow_extra_requirements: [d]\n")
    with pytest.raises(inv.InventoryError, match=r"airflow_extra_requirements is set in .*group_vars/airflow_workers"
                                                 r"\.yml: it is one setting for the whole cluster"):
        inv.read_settings(tmp_path, names)


def test_a_template_the_cli_cannot_evaluate_is_refused(tmp_path):
    write(tmp_path / "hosts.yml", HOSTS.format(vars=""))
    write(tmp_path / "group_vars" / "all.yml", "airflow_extra_wheels: \"{{ wheels_root }}/ours\"\n")
    with pytest.raises(inv.InventoryError, match="airflow_extra_wheels is a template"):
        inv.read_settings(tmp_path, ("airflow_extra_wheels",))


def test_the_lock_command_without_extras_writes_nothing(tmp_path):
    write(tmp_path / "hosts.yml", HOSTS.format(vars=""))
    write(tmp_path / "locks" / "airflow-3.3.2-py3.11.txt", "# an earlier lock\n")
    out = io.StringIO()
    assert lock.run(tmp_path, "airflow-cluster lock -i x", False, out)["locks"] == []
    assert "nothing to lock" in out.getvalue() and "left where they are" in out.getvalue()
    assert (tmp_path / "locks" / "airflow-3.3.2-py3.11.txt").read_text() == "# an earlier lock\n"


@pytest.mark.parametrize(("group_vars", "message"), [
    ("airflow_extra_requirements: ['requests>=']", "airflow_extra_requirements[0] 'requests>=' is not a PEP 508"),
    ("airflow_extra_wheels: /nowhere\nairflow_extra_requirements: [ours]", "airflow_extra_wheels '/nowhere' is not a"),
    ("airflow_extra_wheels: /tmp", "airflow_extra_wheels is set but airflow_extra_requirements is empty"),
    ("airflow_extra_requirements: [ours]\nairflow_version: '9.9.9'", "the project has no lock for Airflow 9.9.9"),
])
def test_the_lock_command_refuses_bad_settings_before_uv(tmp_path, group_vars, message):
    write(tmp_path / "hosts.yml", HOSTS.format(vars=""))
    write(tmp_path / "group_vars" / "all.yml", group_vars + "\n")
    with pytest.raises(lock.LockError, match=message.replace("[", r"\[")):
        lock.run(tmp_path, "airflow-cluster lock -i x", False, None)
    assert not (tmp_path / "locks").exists()


# ---------------------------------------------------------------- a real run (the package index, about 5-10 s)


def make_wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel with nothing but its metadata and one module."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    files = {f"{name.replace('-', '_')}/__init__.py": "",
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                        "Tag: py3-none-any\n"}
    files[f"{dist}.dist-info/RECORD"] = "".join(f"{n},,\n" for n in [*files, f"{dist}.dist-info/RECORD"])
    with zipfile.ZipFile(path, "w") as z:
        for n, text in files.items():
            z.writestr(n, text)
    return path


@pytest.fixture
def uv():
    try:
        return lock.find_uv()
    except lock.LockError as exc:
        pytest.skip(str(exc))


def test_the_lock_command_locks_extras_on_top_of_the_project_lock(tmp_path, cli, uv):
    inventory = tmp_path / "prod"
    write(inventory / "hosts.yml", HOSTS.format(vars=""))
    make_wheel(write(inventory / "wheels" / ".keep", "").parent, "our-operators", "1.4.0")
    write(inventory / "group_vars" / "all.yml", "airflow_extra_requirements:\n  - apache-airflow-providers-http\n"
          "  - our-operators==1.4.0\nairflow_extra_wheels: \"{{ inventory_dir }}/wheels\"\n")
    start = time.monotonic()
    proc = cli("lock", "-i", str(inventory))
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    print(f"airflow-cluster lock with apache-airflow-providers-http and a wheel: {took:.1f} s")
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith(f"Locked the extra packages of {inventory} for Airflow 3.3.2 in ")
    assert lines[-1].endswith("(2 file(s) written): commit them with the inventory.")
    for minor, python in extras.node_pythons.items():
        path = inventory / "locks" / f"airflow-3.3.2-py{minor}.txt"
        project = ROOT / "files" / "locks" / path.name
        assert f"{path}  CPython {python}: " in proc.stdout
        text = path.read_text()
        assert text.startswith(extras.header(
            extras.current_fingerprint("3.3.2", str(project), ["apache-airflow-providers-http", "our-operators==1.4.0"],
                                       str(inventory / "wheels")),
            f"airflow-cluster lock -i {inventory}", python, f"files/locks/{path.name}"))
        got, pinned = extras.pins(text), extras.pins(project.read_text())
        assert {n: got.get(n) for n in pinned} == pinned  # every pin of the project's lock, unchanged
        assert "apache-airflow-providers-http" in got and got["our-operators"] == "1.4.0"
        assert "/tmp" not in text.split("\n", 6)[-1]  # uv's annotations name the project's files relative to it
    assert sorted(p.name for p in (inventory / "locks").iterdir()) == ["airflow-3.3.2-py3.11.txt",
                                                                       "airflow-3.3.2-py3.13.txt"]

    # a requirement against a pin: one message, nothing written
    before = {p: p.read_text() for p in (inventory / "locks").iterdir()}
    write(inventory / "group_vars" / "all.yml", "airflow_extra_requirements:\n  - apache-airflow-providers-http\n"
          "  - requests>=99\n")
    proc = cli("lock", "-i", str(inventory))
    assert proc.returncode == 1
    assert proc.stderr.startswith("airflow-cluster: error: airflow_extra_requirements cannot be locked for Python "
                                  "3.11 (CPython 3.11.2): requests>=99 needs another version of requests than the "
                                  "project's lock pins (requests==2.34.2 in ")
    assert "warning" not in proc.stderr and "Traceback" not in proc.stderr
    assert {p: p.read_text() for p in (inventory / "locks").iterdir()} == before
