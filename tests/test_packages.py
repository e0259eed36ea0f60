"""How the roles install packages, read from their task files (no lab): every apt task holds the services of what it
installs from starting (policy_rc_d: 101), so that a packaged service first starts once its role has configured it,
never on the package's defaults (roles/common's one apt run installs every role's packages that way)."""

from tests.test_role_variables import ROLES, _task_files, _tasks, load_yaml

APT = {"ansible.builtin.apt", "apt"}
# The NFS client's rpcbind and statd must start with it: the mount of the shared DAGs volume needs them.
NOT_HELD = {"roles/airflow_dags/tasks/shared.yml"}


def apt_tasks():
    """(file, task name, apt arguments) of every apt task of every role."""
    for role in sorted(p for p in ROLES.iterdir() if p.is_dir()):
        for path in _task_files(role):
            for task in _tasks(load_yaml(path)):
                for module in APT & task.keys():
                    yield path.relative_to(ROLES.parent), task.get("name", "?"), task[module]


def test_every_apt_task_holds_the_services_it_installs():
    found = list(apt_tasks())
    assert len(found) >= 8, found  # common's run and the roles' own, when they run alone
    unheld = [f"{path}: {name}" for path, name, args in found
              if args.get("policy_rc_d") != 101 and str(path) not in NOT_HELD]
    assert not unheld, "apt tasks without policy_rc_d: 101:\n" + "\n".join(unheld)


def test_the_one_apt_run_installs_no_recommended_package_but_those_named():
    common = [args for path, _, args in apt_tasks() if path.parts[1] == "common"]
    assert [args.get("install_recommends") for args in common] == [False]
    named = load_yaml(ROLES / "common" / "defaults" / "main.yml")["common_packages"]
    # what the cluster needs of the recommends it leaves out: logrotate (the services' logs), netbase (nftables
    # resolves protocol names in /etc/protocols), ca-certificates
    assert {"logrotate", "netbase", "ca-certificates"} <= set(named), named
