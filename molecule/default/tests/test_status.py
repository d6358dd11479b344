"""playbooks/status.yml on the converged full stack: every row green and nothing changed (also
in check mode, with no secret in the output); with Redis stopped, the Redis rows are red and the
run fails, still changing nothing. Runs last (after the upgrade drill of test_default.py)."""
import re
from pathlib import Path

import pytest
import yaml
from conftest import recap, run_playbook

STATUS = "../../playbooks/status.yml"
VAULT = Path(__file__).resolve().parents[3] / "inventories" / "lab" / "group_vars" / "all" / "vault.yml"
REDIS = "default-redis1"


def report(output: str) -> dict[tuple[str, str], tuple[str, str]]:
    """The table of the report: (host, check) -> (ok|RED, value)."""
    rows = {}
    block = output.split("Print the state of the stack", 1)[1].split("TASK [", 1)[0]
    # the yaml callback folds long items: join continuation lines to their item
    items = re.split(r"\n\s*- ", re.sub(r"\n\s{8,}", " ", block))
    for item in items[2:]:
        match = re.match(r"(\S+)\s+(.+?)\s{2,}(ok|RED)\s{2,}(.*)$", item.strip().strip("'\""), re.S)
        if match:
            rows[(match.group(1), match.group(2))] = (match.group(3), " ".join(match.group(4).split()))
    return rows


@pytest.fixture(scope="module")
def secrets():
    return [str(v) for v in yaml.safe_load(VAULT.read_text()).values() if v]


@pytest.mark.parametrize("mode", [[], ["--check"]], ids=["run", "check-mode"])
def test_every_row_is_green_and_nothing_changes(mode, secrets):
    out = run_playbook(STATUS, *mode)
    assert out.returncode == 0, out.stdout[-4000:]
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out.stdout).values()), recap(out.stdout)
    rows = report(out.stdout)
    assert rows and all(ok == "ok" for ok, _value in rows.values()), rows
    assert rows[("default-pg1", "postgresql role")][1] == "primary"
    assert rows[("default-pg2", "postgresql role")][1] == "replica"
    assert rows[("default-pg1", "replication to default-pg2")][1].startswith("streaming, lag ")
    assert rows[("default-pg2", "postgresql wal receiver")][1] == "streaming"
    assert rows[(REDIS, "redis role")][1] == "master"
    assert rows[(REDIS, "redis eviction policy")][1] == "noeviction"
    assert re.match(r"^\d+ waiting, \d+ failed$", rows[(REDIS, "queue ingestion-queue")][1])
    for app in ("default-app1", "default-app2"):
        assert rows[(app, "container langfuse-web")][1].startswith("running, Up"), rows
        assert rows[(app, "web health (with database)")][1].startswith("HTTP 200")
    assert ("default-app1", "container langfuse-clickhouse") in rows
    assert re.match(r"^\d{4}-\d\d-\d\d .* \(\d+ days\)$", rows[("default-lb", "certificate expiry")][1])
    assert rows[("default-lb", "langfuse health through nginx")][1] == "HTTP 200"
    assert rows[("default-pg1", "backup logical")][1].startswith("last success ")
    assert rows[("default-pg2", "backup logical")][1] == "standby: runs are no-ops"
    leaked = [i for i, s in enumerate(secrets) if len(s) >= 8 and s in out.stdout]
    assert not leaked, f"vault values #{leaked} are in the status output"


def test_a_stopped_redis_turns_its_rows_red_and_fails_the_run(hosts):
    redis = hosts[REDIS]
    service = "redis-server" if redis.service("redis-server").is_enabled else "valkey-server"
    redis.check_output(f"systemctl stop {service}")
    try:
        out = run_playbook(STATUS)
        assert out.returncode != 0
        assert all(c["changed"] == 0 for c in recap(out.stdout).values()), recap(out.stdout)
        rows = report(out.stdout)
        assert rows[(REDIS, "redis role")] == ("RED", "unreachable")
        assert rows[(REDIS, "queue ingestion-queue")] == ("RED", "? waiting, ? failed")
        # the rows of the other tiers still say what they see
        assert rows[("default-pg1", "postgresql role")] == ("ok", "primary")
        assert "check(s) are red" in out.stdout and "redis role: unreachable" in out.stdout
    finally:
        redis.check_output(f"systemctl start {service}")
