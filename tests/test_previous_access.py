"""plugins/filter/previous_access.py: what the previous access rules let in that the new ones do not (kept by
site.yml until every component runs its new configuration). Pure logic, no lab; the files are in the formats this
project's templates write, of this release and of 45d07e0 (requirepass, PostgreSQL open to every node)."""

import hashlib
import importlib.util

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("previous_access", ROOT / "plugins" / "filter" / "previous_access.py")
access = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(access)

OLD_NFT = """# Ansible managed
table inet airflow_cluster
delete table inet airflow_cluster
table inet airflow_cluster {
    set cluster_hosts {
        type ipv4_addr
        elements = { 10.0.0.10, 10.0.0.11, 10.0.0.12 }
    }

    chain input {
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        tcp dport 22 accept
        tcp dport { 80, 443 } accept
        ip saddr @cluster_hosts tcp dport { 5432, 6379, 8080 } accept
        ip saddr { 10.0.0.20 } tcp dport { 9100 } accept
        meta l4proto tcp reject with tcp reset
    }
}
"""
CLUSTER = ["10.0.0.10", "10.0.0.11", "10.0.0.12"]
NEW_FLOWS = [{"sources": [], "ports": [22]}, {"sources": [], "ports": [80, 443]},
             {"sources": CLUSTER, "ports": [6379, 8080]}, {"sources": ["10.0.0.10"], "ports": [5432]}]


def test_the_firewall_keeps_what_only_the_previous_table_let_in():
    kept = access.nft_previous_flows(OLD_NFT, NEW_FLOWS)
    # PostgreSQL from the workers and the exporter's port from the old monitoring host; nothing the new rules cover
    assert kept == [{"sources": ["10.0.0.11"], "ports": ["5432"]}, {"sources": ["10.0.0.12"], "ports": ["5432"]},
                    {"sources": ["10.0.0.20"], "ports": ["9100"]}]


def test_a_firewall_that_only_opens_keeps_nothing():
    wider = [*NEW_FLOWS, {"sources": [*CLUSTER, "10.0.0.13"], "ports": [5432]},
             {"sources": ["10.0.0.20"], "ports": [9100]}]
    assert access.nft_previous_flows(OLD_NFT, wider) == []
    assert access.nft_previous_flows("", NEW_FLOWS) == []


def test_kept_flows_are_read_back_as_kept():
    # the lines the template writes for kept flows are read again by the next run (a run that stopped half-way)
    again = OLD_NFT.replace("        meta l4proto", "        ip saddr { 10.0.0.30 } tcp dport { 7777 } accept\n"
                                                     "        tcp dport { 8793 } accept\n        meta l4proto")
    kept = access.nft_previous_flows(again, NEW_FLOWS)
    assert {"sources": ["10.0.0.30"], "ports": ["7777"]} in kept and {"sources": [], "ports": ["8793"]} in kept


OLD_HBA = """# Ansible managed
local   all             postgres                                peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
host    airflow    airflow    10.0.0.10/32    scram-sha-256
host    airflow    airflow    10.0.0.11/32    scram-sha-256
host    replication     all             10.0.0.11/32            scram-sha-256
"""


def test_pg_hba_keeps_the_previous_remote_clients_the_new_rules_lack():
    new = [{"database": "airflow", "user": "airflow", "addresses": ["10.0.0.10"]}]
    assert access.pg_hba_previous_entries(OLD_HBA, new) == [
        {"database": "airflow", "user": "airflow", "addresses": ["10.0.0.11/32"]}]
    both = [{"database": "airflow", "user": "airflow", "addresses": ["10.0.0.10", "10.0.0.11/32"]}]
    assert access.pg_hba_previous_entries(OLD_HBA, both) == []


def test_redis_keeps_the_default_user_of_a_requirepass_release_by_its_digest():
    conf = "bind 127.0.0.1\n# requirepass foobared\nrequirepass s3cretPassw0rdXYZ\n"
    kept = access.redis_previous_users("", conf, ["default", "admin", "airflow-worker"])
    digest = hashlib.sha256(b"s3cretPassw0rdXYZ").hexdigest()
    assert kept == [f"user default on #{digest} ~* &* +@all"] and "s3cret" not in kept[0]
    # a fresh Debian redis.conf names no password: nothing is kept
    assert access.redis_previous_users("", "# requirepass foobared\n", ["default"]) == []


def test_redis_keeps_removed_users_and_a_default_user_that_was_on():
    acl = ("user default on #abc ~* &* +@all\nuser admin on #def ~* &* +@all\n"
           "user airflow-old on #123 ~q* -@all +@read\nuser airflow-worker on #456 ~w* -@all\n")
    kept = access.redis_previous_users(acl, "aclfile /etc/redis/users.acl\n", ["default", "admin", "airflow-worker"])
    assert kept == ["user default on #abc ~* &* +@all", "user airflow-old on #123 ~q* -@all +@read"]
    off = acl.replace("user default on #abc ~* &* +@all", "user default off resetpass -@all")
    assert access.redis_previous_users(off, "", ["default", "admin", "airflow-worker"]) == [
        "user airflow-old on #123 ~q* -@all +@read"]
