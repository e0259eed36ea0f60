"""The cluster model (plugins/module_utils/cluster_model.py) over the sample inventory and the layouts the tests
deploy: one master, HA with separate database, broker and monitoring hosts, a worker leaving and one down. Each
figure here is what the playbooks then do on the hosts (groups, units, ports, packages), so a change of the rules
shows as a failure here before any lab runs. Also: no playbook or role re-derives the shape of the cluster."""

import re
from pathlib import Path

import cluster_model as model
import pytest
import yaml

from airflow_cluster import inventory as inv

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"airflow_api_port": 8080, "airflow_api_lb_port": 8079, "airflow_flower_port": 5555,
         "airflow_scheduler_health_port": 8974, "airflow_worker_log_server_port": 8793, "airflow_db_port": 5432,
         "airflow_redis_port": 6379, "airflow_prometheus_port": 9090, "airflow_alertmanager_port": 9093,
         "airflow_node_exporter_port": 9100, "airflow_metrics_port": 9103, "airflow_postgres_exporter_port": 9187,
         "airflow_redis_exporter_port": 9121, "airflow_db_proxy_port": 6432, "airflow_patroni_port": 8008,
         "airflow_etcd_client_port": 2379, "airflow_etcd_peer_port": 2380, "airflow_sentinel_port": 26379}
MONITORED = {**PORTS, "airflow_monitoring_enabled": True}
HA = {"airflow_master": ["m1"], "airflow_schedulers": ["s2", "s3"], "airflow_workers": ["w1", "w2", "w3"],
      "airflow_postgres": ["db"], "airflow_redis": ["rd"], "airflow_monitoring": ["mon"]}


def sample_groups() -> dict[str, list[str]]:
    groups = inv.read_groups(inv.inventory_file(ROOT / "inventory" / "sample"))
    return {g: list(hosts) for g, hosts in groups.items()}


def test_the_sample_inventory_is_one_master_running_everything_but_the_workers():
    m = model.build(sample_groups(), MONITORED)
    assert (m["master"], m["postgres"], m["redis"], m["monitoring"]) == ("af-master",) * 4
    assert m["worker_hosts"] == ["af-worker1", "af-worker2"] and not m["ha"]
    assert m["cluster_hosts"] == ["af-master", "af-worker1", "af-worker2"]
    master, worker = m["hosts"]["af-master"], m["hosts"]["af-worker1"]
    assert master["roles"] == ["master", "database", "broker", "monitoring"]
    assert master["groups"] == ["airflow_cluster", "airflow_nodes", "airflow_api", "airflow_db", "airflow_broker",
                                "airflow_prometheus"]
    assert master["components"] == ["api-server", "scheduler", "dag-processor", "triggerer"]
    assert master["services"] == master["components"] + ["flower"]
    assert master["dag_code_components"] == ["dag-processor", "triggerer"]
    assert master["secret_components"] == master["components"] + ["db-retention", "flower"]
    assert master["units"] == [
        "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-flower",
        "nginx", "airflow-dag-watch", "airflow-dag-push.timer", "redis-server", "prometheus-node-exporter",
        "collectd", "prometheus-postgres-exporter", "prometheus-redis-exporter", "airflow-celery-queues.timer",
        "prometheus", "prometheus-alertmanager", "airflow-log-retention.timer", "airflow-db-retention.timer",
        "postgresql-backup.timer"]
    assert master["public_ports"] == [80, 443] and master["cluster_ports"] == [8080, 6379]
    assert master["restricted"] == [
        {"sources": ["af-master"], "ports": [5432]},
        {"sources": ["af-master"], "ports": [9100, 9103, 9187, 9121]},
        {"sources": ["af-master"], "ports": [9090, 9093]}]
    assert worker["roles"] == ["worker"] and worker["groups"] == ["airflow_cluster", "airflow_nodes"]
    assert worker["units"] == ["airflow-worker", "prometheus-node-exporter", "collectd", "airflow-log-retention.timer"]
    assert worker["restricted"] == [{"sources": ["af-master"], "ports": [8793]},
                                    {"sources": ["af-master"], "ports": [9100, 9103]}]
    assert worker["public_ports"] == [] and worker["cluster_ports"] == []
    assert m["celery_queues"] == ["default", "af-worker1", "af-worker2"]
    assert m["worker_queues"]["af-worker2"] == ["default", "af-worker2"]


def test_packages_are_per_role_and_per_debian_release():
    m = model.build(sample_groups(), MONITORED)
    master, worker = m["hosts"]["af-master"]["packages"], m["hosts"]["af-worker1"]["packages"]
    assert master["12"] == {
        "postgresql": ["postgresql", "python3-psycopg2"], "redis": ["redis-server"], "nginx": ["nginx"],
        "airflow_dags": ["inotify-tools"], "firewall": ["nftables"],
        "metrics_exporters": ["prometheus-node-exporter", "collectd-core", "libprotobuf-c1", "libmicrohttpd12",
                              "prometheus-postgres-exporter", "prometheus-redis-exporter"],
        "prometheus": ["prometheus", "prometheus-alertmanager"]}
    assert worker["13"] == {"firewall": ["nftables"], "metrics_exporters": [
        "prometheus-node-exporter", "collectd-core", "libprotobuf-c1", "libmicrohttpd12t64"]}
    # Without the monitoring, no exporter anywhere; nftables stays (the firewall role removes its table with it).
    plain = model.build(sample_groups(), {**PORTS, "airflow_monitoring_enabled": False})
    assert plain["hosts"]["af-worker1"]["packages"]["13"] == {"firewall": ["nftables"]}
    assert plain["hosts"]["af-worker1"]["units"] == ["airflow-worker", "airflow-log-retention.timer"]


def test_ha_with_its_own_database_broker_and_monitoring_hosts():
    settings = {**MONITORED, "flower_enabled": False, "airflow_worker_extra_queues": ["gpu", "etl"],
                "airflow_task_databases": [{"name": "teamdb"}],
                "airflow_config_overrides": {"operators": {"default_queue": "etl"}}}
    m = model.build(HA, settings)
    assert (m["master"], m["postgres"], m["redis"], m["monitoring"], m["ha"]) == ("m1", "db", "rd", "mon", True)
    assert m["scheduler_hosts"] == ["m1", "s2", "s3"] == m["database_hosts"]
    assert m["dag_hosts"] == ["m1", "w1", "w2", "w3"]
    assert m["cluster_hosts"] == ["m1", "s2", "s3", "w1", "w2", "w3", "db", "rd", "mon"]
    assert m["host_roles"]["s2"] == ["scheduler"] and m["host_roles"]["mon"] == ["monitoring"]
    h = m["hosts"]
    assert h["m1"]["services"] == h["m1"]["components"]  # flower_enabled: false
    assert h["m1"]["cluster_ports"] == [8080, 8079] and h["s2"]["cluster_ports"] == [8080]
    assert h["s2"]["components"] == ["api-server", "scheduler"] and h["s2"]["groups"] == [
        "airflow_cluster", "airflow_nodes", "airflow_api"]
    # PostgreSQL: its clients, and the workers for the task databases; the log servers: the api-servers' hosts.
    assert h["db"]["restricted"][0] == {"sources": ["m1", "s2", "s3", "w1", "w2", "w3"], "ports": [5432]}
    assert h["w2"]["restricted"][0] == {"sources": ["m1", "s2", "s3"], "ports": [8793]}
    assert h["mon"]["restricted"] == [{"sources": ["mon"], "ports": [9100]}, {"sources": ["m1"], "ports": [9090, 9093]}]
    assert h["rd"]["units"] == ["redis-server", "prometheus-node-exporter", "prometheus-redis-exporter",
                                "airflow-celery-queues.timer"]
    assert h["db"]["groups"] == ["airflow_cluster", "airflow_db"]
    assert h["mon"]["groups"] == ["airflow_cluster", "airflow_prometheus"]
    assert m["celery_queues"] == ["etl", "default", "gpu", "w1", "w2", "w3"]
    assert m["worker_queues"]["w1"] == ["default", "w1", "gpu", "etl"]
    assert h["m1"]["listens"] == {"nginx_listen_port": 80, "airflow_api_port": 8080, "airflow_flower_port": 5555,
                                  "airflow_scheduler_health_port": 8974, "airflow_api_lb_port": 8079,
                                  "airflow_node_exporter_port": 9100, "airflow_metrics_port": 9103}


def test_a_leaving_worker_and_a_worker_down():
    groups = {"airflow_master": ["m"], "airflow_workers": ["w1", "w2", "w3"]}
    m = model.build(groups, {**PORTS, "airflow_workers_leaving": ["w2"], "airflow_workers_down": ["w3"]})
    assert m["worker_hosts"] == ["w1", "w3"] and m["cluster_hosts"] == ["m", "w1", "w3"]
    # The leaving worker runs nothing of the cluster's and is only in airflow_leaving; the one down is in no group
    # (no play contacts it) but keeps its place in the others' configuration.
    assert m["hosts"]["w2"]["groups"] == ["airflow_leaving"] and m["hosts"]["w2"]["components"] == []
    assert m["hosts"]["w3"]["groups"] == [] and m["hosts"]["w3"]["components"] == ["worker"]
    assert model.derived_groups(m) == [["m", m["hosts"]["m"]["groups"]], ["w1", ["airflow_cluster", "airflow_nodes"]],
                                       ["w2", ["airflow_leaving"]]]
    assert "w3" in m["celery_queues"] and "w2" not in m["celery_queues"]


def test_the_monitoring_host_is_its_group_else_the_master():
    # (was preflight_checks.monitoring_host, now the model's)
    assert model.build({"airflow_monitoring": ["mon"], "airflow_master": ["m"]}, {})["monitoring"] == "mon"
    assert model.build({"airflow_master": ["m"]}, {})["monitoring"] == "m"
    assert model.build({"airflow_monitoring": [], "airflow_master": ["m"]}, {})["monitoring"] == "m"
    assert model.build({}, {})["monitoring"] == ""


# ---------------------------------------------------------------- no topology rule outside the model

# A read of the inventory's groups or of a derived topology group, in roles, playbooks or plugins: which host runs
# what is the model's (roles/airflow: airflow_model and the variables read from it). A place that must still read one
# goes into ALLOWED with its reason; a new one fails the test.
TOPOLOGY = re.compile(r"groups\[['\"](airflow_(?:master|workers|schedulers|postgres|redis|monitoring|cluster|nodes|"
                      r"api|db|broker|prometheus|leaving))['\"]\]|groups\.(airflow_\w+)")
# hostvars reads: facts or results another host produced in this run, never a rule about the cluster's shape.
HOSTVARS = re.compile(r"hostvars\b")
ALLOWED: dict[tuple[str, str], str] = {}
HOSTVARS_ALLOWED = {
    "roles/airflow/vars/main.yml": "each host's address (inventory or facts)",
    "roles/control_node/vars/main.yml": "the master's SSH address (the self-signed certificate's names)",
    "roles/reachable/tasks/main.yml": "which hosts answered",
    "roles/run_state/tasks/main.yml": "each host's stamp",
    "roles/run_state/defaults/main.yml": "each host's facts in the fingerprint",
    "roles/airflow_node/tasks/upgrade_check.yml": "the version each node has",
    "roles/airflow_node/tasks/fetch.yml": "which node built the virtualenv archive",
    "roles/airflow_dags/tasks/rsync_master.yml": "the workers' SSH host keys",
    "roles/airflow_dags/tasks/rsync_worker.yml": "the master's push keys",
    "roles/airflow_dags/tasks/shared.yml": "the storage host's SSH host key",
    "roles/control_node/tasks/credentials.yml": "which secrets the inventory sets itself",
    "roles/control_node/tasks/rotate.yml": "which secrets the inventory sets itself",
    "roles/cluster_verify/tasks/cluster.yml": "each node's DAG fingerprint and packages",
    "roles/cluster_status/tasks/cluster.yml": "each host's status record",
    "roles/redis/vars/main.yml": "the master each broker host's Sentinel last agreed on (read in this run)",
    "playbooks/site.yml": "whether the master published new plugins in this run (the components restart)",
}


def _sources():
    for folder in ("roles", "playbooks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".yml", ".j2") and path.is_file():
                yield path
    yield from sorted((ROOT / "plugins").rglob("*.py"))


def _code_lines(path: Path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.lstrip().startswith("#"):
            yield number, line


def test_no_topology_rule_outside_the_model():
    found = []
    for path in _sources():
        rel = str(path.relative_to(ROOT))
        for number, line in _code_lines(path):
            for match in TOPOLOGY.finditer(line):
                if (rel, match.group(0).replace('"', "'")) not in ALLOWED:
                    found.append(f"{rel}:{number}: {match.group(0)}")
            if HOSTVARS.search(line) and rel not in HOSTVARS_ALLOWED and not rel.startswith("plugins/"):
                found.append(f"{rel}:{number}: hostvars")
    assert not found, ("which host runs what is the cluster model's (plugins/module_utils/cluster_model.py, read "
                       "through roles/airflow's airflow_model): read it from there instead of\n" + "\n".join(found))


@pytest.mark.parametrize("line", ["when: inventory_hostname in groups['airflow_workers']",
                                  "hosts: '{{ groups.airflow_master[0] }}'", "x: '{{ hostvars[h].a }}'"])
def test_the_topology_check_can_fail(line, tmp_path):
    path = tmp_path / "new.yml"
    path.write_text(line + "\n")
    assert [m for _, text in _code_lines(path) for m in (TOPOLOGY.findall(text) or HOSTVARS.findall(text))]


def test_what_several_roles_share_comes_from_the_settings():
    m = model.build(sample_groups(), PORTS)
    assert m["db_backup_databases"] == ["airflow"]
    assert m["dag_code_components"] == ["dag-processor", "triggerer"]
    assert m["metrics_textfile_dir"] == "/var/lib/prometheus/node-exporter"
    assert m["writable_dirs"] == ["/var/lib/airflow/logs", "/var/log/airflow"]
    assert (m["install_dir"], m["lib_dir"]) == ("/opt/airflow", "/opt/airflow/lib")
    assert m["tls"] == {"self_signed": True, "certificate": "credentials/tls.crt", "key": "credentials/tls.key",
                        "ca": "credentials/tls.crt"}
    m = model.build(sample_groups(), {
        **PORTS, "airflow_db_name": "meta", "airflow_task_databases": [{"name": "sales"}, {"name": "ops"}],
        "airflow_home": "/srv/af", "airflow_venv": "/usr/local/af/venv", "airflow_credentials_dir": "/inv/credentials",
        "airflow_tls_certificate": "/pki/af.crt", "airflow_tls_key": "/pki/af.key"})
    assert m["db_backup_databases"] == ["meta", "sales", "ops"]
    assert m["writable_dirs"] == ["/srv/af/logs", "/var/log/airflow"]
    assert (m["install_dir"], m["lib_dir"]) == ("/usr/local/af", "/usr/local/af/lib")
    # The user's pair: the checks trust the system's CAs, or the CA the user names.
    assert m["tls"] == {"self_signed": False, "certificate": "/pki/af.crt", "key": "/pki/af.key", "ca": ""}
    assert model.build(sample_groups(), {**PORTS, "airflow_tls_certificate": "/pki/af.crt",
                                         "airflow_tls_ca_certificate": "/pki/ca.crt"})["tls"]["ca"] == "/pki/ca.crt"
    assert model.build(sample_groups(), {**PORTS, "airflow_db_backup": False})["db_backup_databases"] == []


# Three control hosts, each a database host too; the first database host is not the master.
REPLICATED = {"airflow_master": ["c1"], "airflow_schedulers": ["c2", "c3"], "airflow_workers": ["w1", "w2"],
              "airflow_postgres": ["c2", "c1", "c3"]}


def test_a_replicated_database_runs_patroni_and_etcd_on_each_database_host_and_haproxy_on_each_client():
    m = model.build(REPLICATED, {**MONITORED, "airflow_task_databases": [{"name": "teamdb"}]})
    assert (m["postgres"], m["postgres_hosts"], m["db_replicated"]) == ("c2", ["c2", "c1", "c3"], True)
    assert m["db_client_hosts"] == ["c1", "c2", "c3", "w1", "w2"]
    h = m["hosts"]
    c2 = h["c2"]
    assert c2["roles"] == ["scheduler", "database"]
    assert c2["groups"] == ["airflow_cluster", "airflow_nodes", "airflow_api", "airflow_db", "airflow_db_proxy"]
    assert c2["packages"]["13"]["etcd"] == ["etcd-server", "etcd-client"]
    assert c2["packages"]["13"]["postgresql"] == ["postgresql", "python3-psycopg2", "patroni", "python3-etcd"]
    assert c2["packages"]["12"]["haproxy"] == ["haproxy"]
    assert [u for u in c2["units"] if u in ("etcd", "patroni", "haproxy")] == ["etcd", "patroni", "haproxy"]
    assert c2["managing_roles"][:7] == ["common", "firewall", "airflow_retention", "etcd", "postgresql", "haproxy",
                                        "airflow_node"]
    # PostgreSQL from its clients and the other database hosts; Patroni's REST API the same (HAProxy's checks);
    # etcd from its members only.
    assert c2["restricted"][:3] == [{"sources": ["c1", "c2", "c3", "w1", "w2"], "ports": [5432]},
                                    {"sources": ["c1", "c2", "c3", "w1", "w2"], "ports": [8008]},
                                    {"sources": ["c2", "c1", "c3"], "ports": [2379, 2380]}]
    assert {k: v for k, v in c2["listens"].items() if v in (5432, 8008, 2379, 2380, 6432)} == {
        "airflow_db_port": 5432, "airflow_patroni_port": 8008, "airflow_etcd_client_port": 2379,
        "airflow_etcd_peer_port": 2380, "airflow_db_proxy_port": 6432}
    # A worker reaches the task databases through its own HAProxy; without task databases it has none.
    assert h["w1"]["packages"]["13"]["haproxy"] == ["haproxy"] and "airflow_db_proxy" in h["w1"]["groups"]
    plain = model.build(REPLICATED, MONITORED)["hosts"]["w1"]
    assert "haproxy" not in plain["packages"]["13"] and "haproxy" not in plain["units"]


def test_one_database_host_is_not_replicated():
    m = model.build({**REPLICATED, "airflow_postgres": ["c2"]}, MONITORED)
    assert (m["postgres_hosts"], m["db_replicated"]) == (["c2"], False)
    c2 = m["hosts"]["c2"]
    assert not {"etcd", "patroni", "haproxy"} & set(c2["units"])
    assert "etcd" not in c2["managing_roles"] and "haproxy" not in c2["managing_roles"]
    assert c2["packages"]["13"]["postgresql"] == ["postgresql", "python3-psycopg2"]
    assert model.build({**REPLICATED, "airflow_postgres": []}, MONITORED)["postgres_hosts"] == ["c1"]


def test_a_replicated_broker_runs_a_redis_and_a_sentinel_on_each_broker_host():
    m = model.build({**REPLICATED, "airflow_redis": ["c1", "c2", "c3"]}, MONITORED)
    assert (m["redis"], m["redis_hosts"], m["broker_replicated"]) == ("c1", ["c1", "c2", "c3"], True)
    for host in ("c1", "c2", "c3"):
        h = m["hosts"][host]
        assert "broker" in h["roles"] and "airflow_broker" in h["groups"]
        assert h["packages"]["12"]["redis"] == h["packages"]["13"]["redis"] == ["redis-server", "redis-sentinel"]
        assert [u for u in h["units"] if u.startswith("redis")] == ["redis-server", "redis-sentinel"]
        assert h["listens"]["airflow_sentinel_port"] == 26379 and h["listens"]["airflow_redis_port"] == 6379
        # Redis and its Sentinel from every cluster host (the clients ask the Sentinels, then use the master).
        assert h["cluster_ports"][-2:] == [6379, 26379]
        assert "redis" in h["managing_roles"]
        assert {e["unit"] for e in h["exporters"]} >= {"prometheus-redis-exporter"}
        assert "airflow-celery-queues.timer" in h["units"]
    assert "redis" not in m["hosts"]["w1"]["managing_roles"]
    # One broker host: Redis alone, as before.
    one = model.build(REPLICATED, MONITORED)
    assert (one["redis_hosts"], one["broker_replicated"]) == (["c1"], False)
    assert one["hosts"]["c1"]["packages"]["13"]["redis"] == ["redis-server"]
    assert "redis-sentinel" not in one["hosts"]["c1"]["units"]
    assert "airflow_sentinel_port" not in one["hosts"]["c1"]["listens"]


# ---------------------------------------------------------------- site.yml applies each role where the model says

GATE = "'{role}' in airflow_host_managing_roles"
# The hosts a play of site.yml may select, by the groups its pattern adds up (not those after & or !): a model group,
# or a group the run derives from a subset of one (roles/host_checks, roles/run_state).
RUN_GROUPS = {"airflow_install_pending": "airflow_nodes", "airflow_repackage_workers": "airflow_nodes",
              "airflow_access_kept": "airflow_cluster"}
LAYOUTS = {"sample": (sample_groups(), MONITORED), "ha": (HA, MONITORED), "unmonitored": (sample_groups(), PORTS),
           "replicated": (REPLICATED, {**MONITORED, "airflow_task_databases": [{"name": "teamdb"}]}),
           "replicated broker": ({**REPLICATED, "airflow_redis": ["c1", "c2", "c3"]}, MONITORED),
           "flower off": (sample_groups(), {**MONITORED, "flower_enabled": False})}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_site_yml_applies_each_role_on_the_hosts_whose_managing_roles_name_it(layout):
    """Each role site.yml imports that the model lists in managing_roles runs exactly on the hosts that list it: the
    play's hosts are all such hosts, or the import is gated by airflow_host_managing_roles (and nothing else)."""
    m = model.build(*LAYOUTS[layout])
    in_group = {g: {h for h, rec in m["hosts"].items() if g in rec["groups"]} for g in
                {g for rec in m["hosts"].values() for g in rec["groups"]}}
    applies = {}
    for h, rec in m["hosts"].items():
        for role in rec["managing_roles"]:
            applies.setdefault(role, set()).add(h)
    # Every role the model may name, in any layout (a role absent from this one must then run nowhere).
    universe = {r for groups, settings in LAYOUTS.values()
                for rec in model.build(groups, settings)["hosts"].values() for r in rec["managing_roles"]}
    checked = []
    for play in yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text()):
        if "hosts" not in play:
            continue
        selected = set().union(*(in_group.get(RUN_GROUPS.get(g, g), set()) for g in play["hosts"].split(":")
                                 if g and g[0] not in "&!"))
        for task in play.get("tasks", []):
            role = (task.get("ansible.builtin.import_role") or {}).get("name")
            if role not in universe:
                continue
            when = task.get("when")
            if when is not None:
                assert when == GATE.format(role=role), (play["name"], role, when)
            else:
                assert selected <= applies.get(role, set()), (layout, play["name"], play["hosts"], role)
            checked.append(role)
    assert universe <= set(checked)
