"""Behaviour of the postgresql role: streaming replica, tuning as pg_tune computes it, scram-only
access from the inventory's hosts, reload vs restart, no password in the output."""
import importlib.util
import re
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import SCENARIO_DIR, address, can_connect, recap, run_playbook

PRIMARY, REPLICA, APP, OUTSIDE = "postgresql-primary", "postgresql-replica", "postgresql-app", "postgresql-outside"
SLOT = "replica_postgresql_replica"
ROOT = Path(__file__).resolve().parents[3]

GROUP_VARS = yaml.safe_load((SCENARIO_DIR / "molecule.yml").read_text())["provisioner"]["inventory"]["group_vars"]["all"]
LANGFUSE_PW = GROUP_VARS["postgresql_langfuse_password"]
SECRETS = [LANGFUSE_PW, GROUP_VARS["postgresql_replication_password"], GROUP_VARS["postgresql_monitoring_password"]]


def sql(host, query, db="langfuse"):
    """Run SQL as the postgres OS user over the local socket (peer)."""
    return host.run("runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d %s -c %s", db, query)


def value(host, query, db="langfuse"):
    res = sql(host, query, db)
    assert res.rc == 0, res.stderr
    return res.stdout.strip()


def remote(client, server_addr, password, port=5432, query="SELECT current_user"):
    return client.run(
        "PGPASSWORD=%s PGCONNECT_TIMEOUT=5 psql -XAtq -h %s -p %s -U langfuse -d langfuse -c %s",
        password, server_addr, str(port), query)


def start_times(hosts):
    return {n: value(hosts[n], "SELECT pg_postmaster_start_time()", "postgres") for n in (PRIMARY, REPLICA)}


def test_row_written_on_primary_is_read_on_replica_within_2s(hosts):
    primary, replica = hosts[PRIMARY], hosts[REPLICA]
    marker = str(uuid.uuid4())
    value(primary, "CREATE TABLE IF NOT EXISTS molecule_probe (v text)")
    value(primary, f"INSERT INTO molecule_probe VALUES ('{marker}')")
    deadline = time.monotonic() + 2.0
    seen = ""
    while time.monotonic() < deadline:
        res = sql(replica, f"SELECT v FROM molecule_probe WHERE v = '{marker}'")
        seen = res.stdout.strip()
        if seen == marker:
            break
        time.sleep(0.1)
    assert seen == marker


def test_replica_is_read_only(hosts):
    res = sql(hosts[REPLICA], "INSERT INTO molecule_probe VALUES ('nope')")
    assert res.rc != 0
    assert "read-only transaction" in res.stderr


def test_replica_streams_through_its_slot(hosts):
    primary = hosts[PRIMARY]
    state = value(primary, "SELECT state || ' ' || application_name FROM pg_stat_replication", "postgres")
    assert state == f"streaming {SLOT}"
    slot = value(primary, "SELECT slot_name || ' ' || active FROM pg_replication_slots", "postgres")
    assert slot == f"{SLOT} true"


def _pg_tune():
    spec = importlib.util.spec_from_file_location("pg_tune", ROOT / "plugins" / "filter" / "pg_tune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pg_tune


def _kb(text):
    """Memory settings in kB, so '1GB' and '1024MB' compare equal; other values unchanged."""
    match = re.fullmatch(r"(\d+)(kB|MB|GB|TB)", text)
    if not match:
        return text
    return int(match.group(1)) * {"kB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3}[match.group(2)]


def test_every_tuned_parameter_is_what_pg_tune_computes(hosts):
    primary = hosts[PRIMARY]
    cpus = int(primary.check_output("grep -c ^processor /proc/cpuinfo"))
    expected = _pg_tune()({
        "total_memory_mb": GROUP_VARS["postgresql_tune_memory_mb"], "cpu_count": cpus,
        "max_connections": None, "storage": "ssd", "profile": "web", "db_size": "mid_ram", "pg_version": 17,
    })
    expected.update(GROUP_VARS["postgresql_parameters"])
    assert "shared_buffers" in expected and "work_mem" in expected
    for name, want in expected.items():
        got = value(primary, f"SHOW {name}", "postgres")
        assert _kb(got) == _kb(want), f"{name}: SHOW {got!r}, pg_tune {want!r}"


def test_langfuse_user_connects_from_the_app_host_only_with_its_password(hosts):
    app, outside = hosts[APP], hosts[OUTSIDE]
    primary_addr = address(hosts[PRIMARY])
    ok = remote(app, primary_addr, LANGFUSE_PW)
    assert ok.rc == 0 and ok.stdout.strip() == "langfuse", ok.stderr
    bad = remote(app, primary_addr, LANGFUSE_PW + "x")
    assert bad.rc != 0 and "password authentication failed" in bad.stderr
    assert not can_connect(outside, primary_addr, 5432)
    assert not can_connect(outside, primary_addr, 6432)
    # the replica admits the same clients (it becomes the primary after a failover)
    assert remote(app, address(hosts[REPLICA]), LANGFUSE_PW).rc == 0


def test_pgbouncer_pools_langfuse_connections(hosts):
    app = hosts[APP]
    primary_addr = address(hosts[PRIMARY])
    ok = remote(app, primary_addr, LANGFUSE_PW, port=6432, query="SELECT current_database()")
    assert ok.rc == 0 and ok.stdout.strip() == "langfuse", ok.stderr
    bad = remote(app, primary_addr, "wrong-password", port=6432)
    assert bad.rc != 0


def test_pg_hba_is_scram_only(hosts):
    for name in (PRIMARY, REPLICA):
        hba = hosts[name].check_output("grep -hv '^#' /etc/postgresql/17/main/pg_hba.conf")
        methods = {line.split()[-1] for line in hba.splitlines() if line.strip()}
        assert methods <= {"scram-sha-256", "peer"}, methods
        assert not re.search(r"\b(trust|md5|password)\b", hba)


def test_secret_files_are_private(hosts):
    passfile = hosts[REPLICA].file("/var/lib/postgresql/.pgpass")
    assert (passfile.user, passfile.mode) == ("postgres", 0o600)
    userlist = hosts[PRIMARY].file("/etc/pgbouncer/userlist.txt")
    assert (userlist.user, userlist.mode) == ("postgres", 0o600)


def test_rerun_changes_nothing_restarts_nothing_and_prints_no_password(hosts):
    before = start_times(hosts)
    out = run_playbook("converge.yml", "-v", "--diff")
    assert out.returncode == 0, out.stdout[-3000:]
    assert all(c["changed"] == 0 for c in recap(out.stdout).values()), recap(out.stdout)
    for secret in SECRETS:
        assert secret not in out.stdout
    assert start_times(hosts) == before


def _converge_with(*args, **parameters):
    extra = dict(GROUP_VARS["postgresql_parameters"], **parameters)
    # site.yml on the database hosts only, as an operator changes a setting
    return run_playbook("converge.yml", "--limit", "postgres_primary:postgres_replica", *args, "-e",
                        yaml.safe_dump({"postgresql_parameters": extra}, default_flow_style=True))


@pytest.fixture
def restore_parameters():
    yield
    assert _converge_with().returncode == 0


@pytest.mark.usefixtures("restore_parameters")
def test_work_mem_reloads_shared_buffers_restarts_bad_value_is_refused(hosts):
    primary, replica = hosts[PRIMARY], hosts[REPLICA]
    before = start_times(hosts)

    out = _converge_with(work_mem="7MB")
    assert out.returncode == 0, out.stdout[-3000:]
    assert value(primary, "SHOW work_mem", "postgres") == "7MB"
    assert value(replica, "SHOW work_mem", "postgres") == "7MB"
    assert start_times(hosts) == before, "work_mem must not restart PostgreSQL"

    out = _converge_with(work_mem="7MB", shared_buffers="160MB")
    assert out.returncode == 0, out.stdout[-3000:]
    assert value(primary, "SHOW shared_buffers", "postgres") == "160MB"
    restarted = start_times(hosts)
    assert restarted[PRIMARY] != before[PRIMARY] and restarted[REPLICA] != before[REPLICA]
    test_row_written_on_primary_is_read_on_replica_within_2s(hosts)  # still replicating

    # an invalid value: the run fails with PostgreSQL's message, nothing is reloaded or restarted
    out = _converge_with("--limit", PRIMARY, work_mem="lots", shared_buffers="160MB")
    assert out.returncode != 0
    assert 'invalid value for parameter "work_mem": "lots"' in out.stdout, out.stdout[-3000:]
    assert value(primary, "SHOW work_mem", "postgres") == "7MB"
    assert start_times(hosts)[PRIMARY] == restarted[PRIMARY]
    conf = primary.file("/etc/postgresql/17/main/conf.d/60-llmops.conf").content_string
    assert "work_mem = '7MB'" in conf, "the previous drop-in must be back"
