"""Each role's README.md is what tests/role_readmes.py generates from its specs and defaults: a spec, a default or a
role's description that changes without `make role-readmes` fails here. No lab, no subprocess: a second."""

import shutil

import pytest
import yaml

from tests import role_readmes
from tests.role_readmes import ROOT, SECRET, render, roles, stale


def test_the_role_readmes_are_current():
    found = stale()
    if found:
        names = "\n".join(str(p.relative_to(ROOT)) for p in found)
        pytest.fail(f"{len(found)} role README(s) differ from the specs; run `make role-readmes`:\n{names}",
                    pytrace=False)
    # the check compared something: every role has a README naming its entry points
    assert len(roles()) > 10
    assert "## Entry point `main`" in (ROOT / "roles" / "nginx" / "README.md").read_text()


@pytest.fixture
def project(tmp_path):
    """A copy of the project's roles with their generated READMEs, to change."""
    shutil.copytree(ROOT / "roles", tmp_path / "roles", ignore=shutil.ignore_patterns("templates", "files"))
    assert role_readmes.main(["--root", str(tmp_path)]) == 0
    assert stale(tmp_path) == []
    return tmp_path


def test_a_changed_spec_makes_its_readme_stale(project, capsys):
    spec_path = project / "roles" / "nginx" / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(spec_path.read_text())
    specs["argument_specs"]["main"]["options"]["nginx_listen_port"]["description"] = "A new description."
    spec_path.write_text(yaml.safe_dump(specs, sort_keys=False))

    assert stale(project) == [project / "roles" / "nginx" / "README.md"]
    capsys.readouterr()
    assert role_readmes.main(["--root", str(project), "--check"]) == 1
    out = capsys.readouterr().out
    assert "stale: roles/nginx/README.md" in out and "make role-readmes" in out
    assert "A new description." not in (project / "roles" / "nginx" / "README.md").read_text()

    assert role_readmes.main(["--root", str(project)]) == 0
    assert "A new description." in (project / "roles" / "nginx" / "README.md").read_text()
    assert role_readmes.main(["--root", str(project), "--check"]) == 0


def test_a_readme_edited_by_hand_is_stale(project):
    readme = project / "roles" / "redis" / "README.md"
    readme.write_text(readme.read_text() + "\nA note.\n")
    assert stale(project) == [readme]


def test_secrets_inputs_and_a_role_without_specs(tmp_path, capsys):
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "tasks").mkdir()
    (role / "tasks" / "extra.yml").write_text("---\n[]\n")
    (role / "meta" / "main.yml").write_text(yaml.safe_dump(
        {"galaxy_info": {"description": "A demo role"}, "dependencies": [{"role": "airflow"}]}))
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump({
        "demo_password": "s3cret-value", "demo_port": 8080, "demo_list": ["a", "b"],
        "demo_long": "{{ " + " + ".join(["demo_port"] * 20) + " }}", "demo_pipe": "{{ x | int }}",
    }))
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {
        "main": {"short_description": "Main", "options": {
            "demo_password": {"type": "str", "no_log": True, "required": True, "description": "A password."},
            "demo_port": {"type": "int", "choices": [8080, 8081], "description": "A port."},
            "demo_list": {"type": "list", "elements": "str", "description": "A list."},
            "demo_long": {"type": "int", "description": "Computed."},
            "demo_pipe": {"type": "int", "description": "A filter."},
        }},
        "extra.yml": {"short_description": "Extra", "options": {}},
    }}, sort_keys=False))
    (tmp_path / "roles" / "bare").mkdir()

    text = render(role)
    assert "s3cret-value" not in text
    assert f"| `demo_password` | str | yes |  | {SECRET} | A password. |" in text
    assert "| `demo_port` | int |  | `8080`, `8081` | `8080` | A port. |" in text
    assert "| `demo_list` | list of str |  |  | `[\"a\", \"b\"]` | A list. |" in text
    assert "| `demo_long` | int |  |  | (computed, see defaults/main.yml) | Computed. |" in text
    assert "`{{ x \\| int }}`" in text  # a pipe would end the table cell
    assert "Entered whole" in text
    assert "`ansible.builtin.import_role: {name: demo, tasks_from: extra.yml}`" in text
    assert "[airflow](../airflow/README.md)" in text

    assert role_readmes.main(["--root", str(tmp_path)]) == 0
    assert "roles without meta/argument_specs.yml: bare" in capsys.readouterr().out
    assert "No inputs declared" in (tmp_path / "roles" / "bare" / "README.md").read_text()
