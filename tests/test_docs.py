"""The README and docs/*.md name only what exists: every CLI command and flag, make target, playbook, tag, variable,
group, repository path and link they name is looked up in the tree (tests/docs_references.py). No lab, no
subprocess: seconds."""

import dataclasses

import pytest

from tests.docs_references import ROOT, Doc, anchors, doc_files, known, misses, references


def snippet(text: str) -> Doc:
    return Doc("snippet.md", text)


def test_the_docs_name_only_what_exists():
    found, kinds = [], set()
    for path in doc_files():
        refs = references(Doc(str(path.relative_to(ROOT)), path.read_text()), known())
        found += [r for r in refs if not r.ok]
        kinds |= {r.kind for r in refs}
    if found:
        pytest.fail(f"{len(found)} name(s) the docs give do not exist:\n" + "\n".join(map(str, found)), pytrace=False)
    # the checks read something: a parser that found nothing would pass the assertion above
    assert {"command", "flag", "make target", "playbook", "variable", "path", "link"} <= kinds, kinds


MISSING = [
    ("Run `make no-such-target`.", "make target", "no-such-target"),
    ("```sh\nmake demo\nmake lock no-such-target AIRFLOW_VERSION=3.3.2\n```", "make target", "no-such-target"),
    ("`airflow-cluster lab frobnicate`", "command", "lab frobnicate"),
    ("`airflow-cluster frobnicate -i inventory/prod`", "command", "frobnicate"),
    ("Then `lab frobnicate worker1`.", "command", "lab frobnicate"),
    ("`airflow-cluster deploy --no-such-flag`", "flag", "deploy --no-such-flag"),
    ("```sh\n$ .venv/bin/airflow-cluster lab up --workers 2 --no-such-flag 3  # comment\n```", "flag",
     "lab up --no-such-flag"),
    ("`airflow-cluster status --unreachable`", "flag", "status --unreachable"),  # remove-worker's, not status's
    ("`ansible-playbook -i inventory/prod playbooks/nope.yml`", "playbook", "playbooks/nope.yml"),
    ("`nope.yml` does it", "file", "nope.yml"),
    ("`ansible-playbook playbooks/site.yml --tags nginx,no_such_tag`", "tag", "no_such_tag"),
    ("`airflow-cluster deploy --skip-tags no_such_tag`", "tag", "no_such_tag"),
    ("Set `airflow_no_such_setting`.", "variable", "airflow_no_such_setting"),
    ("Set `redis_no_such_setting`.", "variable", "redis_no_such_setting"),
    ("`airflow_master: true`", "variable", "airflow_master"),  # a group, not a setting
    ("`ansible-playbook playbooks/site.yml -e no_such_var=1`", "variable", "no_such_var"),
    ("`-e '{\"no_such_var\": true}'`", "variable", "no_such_var"),
    ("See `roles/nope/`.", "path", "roles/nope/"),
    ("```sh\n.venv/bin/python benchmarks/nope.py --short\n```", "path", "benchmarks/nope.py"),
    ("`inventory/staging/hosts.yml`", "path", "inventory/staging/hosts.yml"),
    ("`files/locks/nope-<version>.txt`", "path", "files/locks/nope-<version>.txt"),
    ("See [the docs](docs/nope.md).", "link", "docs/nope.md"),
    ("# Title\n\nSee [below](#no-such-heading).", "link", "#no-such-heading"),
    ("See [the tags](tests/test_tags.py) and [x](README.md#no-such-heading).", "link", "README.md#no-such-heading"),
]


@pytest.mark.parametrize(("text", "kind", "name"), MISSING, ids=[f"{kind}:{name}" for _, kind, name in MISSING])
def test_a_name_that_does_not_exist_is_reported(text, kind, name):
    missed = misses(snippet(text), known())
    found = [(r.kind, r.name) for r in missed]
    assert (kind, name) in found, found
    assert str(missed[0]).startswith("snippet.md:"), "file:line: in the message"


REAL = """\
# Deploy: the `site.yml` way

```sh
make demo   # or: make lock-env INVENTORY=inventory/prod
.venv/bin/airflow-cluster lab up --workers 2 --spare 1 [--distro bookworm|trixie]
$ airflow-cluster dags push -i inventory/lab --force
.venv/bin/ansible-playbook -i inventory/prod playbooks/site.yml --tags nginx --limit worker1 -e airflow_dags_force=true
.venv/bin/python benchmarks/dag_sync.py -i inventory/lab --changes 20
```

`airflow-cluster remove-worker worker2 -i inventory/prod --unreachable -vvv`, `lab stop worker1 --force`,
`make molecule MOLECULE_SCENARIOS="default shared"`, `airflow_version`, `airflow_workers` (a group),
`airflow_monitoring_enabled: false`, `-e '{"airflow_skip_unchanged": false}'`, `-e dump=FILE`, `airflow_cluster/cli.py`,
`roles/airflow/defaults/main.yml`, `files/locks/airflow-<version>-py<X.Y>.txt`, `inventory/<env>/credentials/`,
`inventory/lab/hosts.yml`, `/etc/airflow/airflow.cfg`, `airflow.cfg`, `Makefile`, `test_tags.py`, `--tags <role>_run`,
`airflow_counter_total` (a series the Prometheus config writes), `redis_key_size{key=...}`, `nginx_configure`.
[Deploy](#deploy-the-siteyml-way), [the tags' test](tests/test_tags.py), [Prometheus](https://prometheus.io/).
"""


def test_names_that_exist_are_not_reported():
    refs = references(snippet(REAL), known())
    assert [str(r) for r in refs if not r.ok] == []
    assert {r.kind for r in refs} == {"command", "flag", "make target", "playbook", "file", "tag", "variable", "path",
                                      "link"}
    names = {(r.kind, r.name) for r in refs}
    assert {("command", "lab up"), ("flag", "lab up --workers"), ("make target", "lock-env"),
            ("flag", "remove-worker -vvv"), ("command", "lab stop")} <= names
    assert not {r for r in refs if r.name in ("-i", "--limit", "worker1", "/etc/airflow/airflow.cfg")}, \
        "ansible-playbook's flags, arguments and host paths are not checked"


@pytest.mark.parametrize(("text", "field", "removed"), [
    ("`make demo`", "make_targets", "demo"),
    ("`--tags nginx`", "tags", "nginx"),
    ("`airflow_version: 3.3.2`", "variables", "airflow_version"),
    ("`airflow_workers`", "names", "airflow_workers"),
])
def test_a_name_removed_from_the_tree_is_reported(text, field, removed):
    k = known()
    assert not misses(snippet(text), k)
    without = dataclasses.replace(k, **{field: getattr(k, field) - {removed}})
    assert [r.name for r in misses(snippet(text), without)] == [removed]


def test_heading_anchors_follow_github():
    text = "# The CLI\n## Your team's packages, plugins…\n```sh\n# not a heading\n```\n## The CLI\n### `status` [x](y)"
    assert anchors(text) == {"the-cli", "your-teams-packages-plugins", "the-cli-1", "status-x"}
