"""Behaviour of the node_exporter, redis_exporter and monitoring roles: Debian's Prometheus and
Alertmanager on monitoring-mon scrape node_exporter on every host and redis_exporter on the Redis
host; the collection's alert rules pass promtool's unit tests and fire for real (a stopped
exporter, a failed backup's metric, a stopped Redis, 500 BullMQ jobs that no worker takes, a public
URL without HTTPS); the exporters and the web interfaces answer the monitoring hosts only."""
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import (address, can_connect, dashboard_expressions, failing_queries, get_json, prometheus_query, recap,
                      run_playbook)

MON, NODE, REDIS, OUTSIDE = "monitoring-mon", "monitoring-node", "monitoring-redis", "monitoring-outside"
TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS.parents[2] / "tests" / "helpers"))
import bullmq  # noqa: E402  (tests/helpers: the real BullMQ client)

VARS = yaml.safe_load((TESTS.parent / "molecule.yml").read_text())["provisioner"]["inventory"]["group_vars"]["all"]


def wait_until(check, seconds: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        time.sleep(1)
    raise AssertionError(f"{what} did not happen within {seconds} s")


@pytest.fixture(scope="module")
def mon(hosts):
    return hosts[MON]


@pytest.fixture(scope="module")
def prom(mon):
    return f"http://{address(mon)}:9090"


def firing(mon, prom, alertname: str, **labels) -> list:
    alerts = get_json(mon, f"{prom}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("alertname") == alertname and a["state"] == "firing"
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def test_every_target_is_up(mon, prom):
    expected = {("node", MON), ("node", NODE), ("node", REDIS), ("node", OUTSIDE), ("prometheus", MON),
                ("alertmanager", MON), ("redis", REDIS), ("langfuse_public", "https://monitoring-outside")}

    def all_up():
        targets = get_json(mon, f"{prom}/api/v1/targets")["data"]["activeTargets"]
        seen = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
        return set(seen) == expected and set(seen.values()) == {"up"}
    wait_until(all_up, 60, "every target up")
    # the inventory groups reach the node series as a label
    result = get_json(mon, f"{prom}/api/v1/query?query=up%7Bjob%3D%22node%22%2Cinstance%3D%22{NODE}%22%7D")
    assert result["data"]["result"][0]["metric"]["groups"] == "watched"


def test_config_and_rules_pass_their_own_tools(mon):
    mon.check_output("mkdir -p /tmp/llmops-rules-test")
    mon.check_output("printf %s %s > /tmp/llmops-rules-test/rules_test.yml", "%s", (TESTS / "rules_test.yml").read_text())
    out = mon.run("promtool test rules /tmp/llmops-rules-test/rules_test.yml")
    assert out.rc == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    assert mon.run("promtool check config /etc/prometheus/prometheus.yml").rc == 0
    assert mon.run("amtool check-config /etc/prometheus/alertmanager.yml").rc == 0
    # a broken rule is refused by the role before it replaces the file
    run = run_playbook("converge.yml", "--limit", "monitoring",
                       "-e", '{"monitoring_alert_rules_extra": [{"alert": "Broken", "expr": "up =="}]}')
    assert run.returncode != 0, run.stdout[-3000:]
    assert "Write the alert rules" in run.stdout and "failed to validate" in run.stdout, run.stdout[-3000:]
    assert "Broken" not in mon.file("/etc/prometheus/rules/llmops.yml").content_string


def test_ports_answer_the_monitoring_hosts_only(hosts):
    node_addr, mon_addr = address(hosts[NODE]), address(hosts[MON])
    assert can_connect(hosts[MON], node_addr, 9100)
    assert not can_connect(hosts[OUTSIDE], node_addr, 9100)
    for port in (9090, 9093):
        assert not can_connect(hosts[OUTSIDE], mon_addr, port), port
        assert not can_connect(hosts[NODE], mon_addr, port), port
    # bound to the private address, not every interface
    assert f"{node_addr}:9100" in hosts[NODE].check_output("ss -Htln").split()
    redis_addr = address(hosts[REDIS])
    assert can_connect(hosts[MON], redis_addr, 9121)
    assert not can_connect(hosts[OUTSIDE], redis_addr, 9121)
    assert not can_connect(hosts[NODE], redis_addr, 9121)
    assert f"{redis_addr}:9121" in hosts[REDIS].check_output("ss -Htln").split()


def test_redis_exporter_keeps_its_password_off_the_command_line(hosts):
    redis = hosts[REDIS]
    password = VARS["llmops_redis_monitoring_password"]
    secret = redis.file("/etc/prometheus/redis-exporter-password.json")
    assert (secret.user, secret.group, secret.mode) == ("root", "prometheus", 0o640)
    assert password in secret.content_string
    pid = redis.check_output("systemctl show -P MainPID prometheus-redis-exporter")
    cmdline = redis.file(f"/proc/{pid}/cmdline").content.replace(b"\0", b" ").decode()
    assert "--redis.password-file=" in cmdline and password not in cmdline, cmdline


def test_the_monitoring_user_counts_jobs_but_cannot_read_them(hosts):
    """The redis role's monitoring ACL user (the exporter's) may read the type and length of
    BullMQ's keys, never their contents; Langfuse's user adds jobs as Langfuse's web does."""
    redis_addr = address(hosts[REDIS])
    added, counts = bullmq.run(MON, redis_addr, 6379, "langfuse", VARS["llmops_redis_password"], [
        {"op": "add", "queue": "llmops-acl-probe", "count": 3}, {"op": "counts", "queue": "llmops-acl-probe"}])
    assert added == {"added": 3} and counts["wait"] == 3, counts
    try:
        key = "bull:llmops-acl-probe:wait"
        replies = bullmq.run(MON, redis_addr, 6379, "monitoring", VARS["llmops_redis_monitoring_password"], [
            {"op": "call", "args": ["TYPE", key]}, {"op": "call", "args": ["LLEN", key]},
            {"op": "call", "args": ["LRANGE", key, "0", "-1"]},
            {"op": "call", "args": ["HGETALL", "bull:llmops-acl-probe:1"]},
            {"op": "call", "args": ["SET", "bull:x", "1"]}])
        assert replies[0] == {"reply": "list"} and replies[1] == {"reply": 3}, replies
        assert all("NOPERM" in r.get("error", "") for r in replies[2:]), replies
    finally:
        bullmq.run(MON, redis_addr, 6379, "langfuse", VARS["llmops_redis_password"],
                   [{"op": "obliterate", "queue": "llmops-acl-probe"}])


def test_bullmq_jobs_left_waiting_fire_the_backlog_alert(hosts, mon, prom):
    """500 jobs in Langfuse's ingestion queue, added with the real BullMQ client and taken by no
    worker: redis_exporter reports the queue's length, LangfuseQueueBacklog fires (more than 100
    jobs for 10s here) and resolves once the queue is empty."""
    redis_addr = address(hosts[REDIS])
    creds = (MON, redis_addr, 6379, "langfuse", VARS["llmops_redis_password"])
    ops = [{"op": "add", "queue": "ingestion-queue", "count": 500}, {"op": "counts", "queue": "ingestion-queue"}]
    _added, counts = bullmq.run(*creds, ops)
    assert counts["wait"] == 500, counts
    try:
        start = time.monotonic()
        length = 'redis_key_size{key="bull:ingestion-queue:wait"}'
        wait_until(lambda: [r["value"][1] for r in prometheus_query(mon, prom, length)] == ["500"], 60,
                   "redis_key_size of bull:ingestion-queue:wait at 500")
        wait_until(lambda: firing(mon, prom, "LangfuseQueueBacklog", queue="ingestion-queue"), 90,
                   "LangfuseQueueBacklog firing")
        print(f"MEASURED LangfuseQueueBacklog firing {time.monotonic() - start:.0f} s after 500 jobs were added "
              "(for: 10s, scrape 5s)")
    finally:
        bullmq.run(*creds, [{"op": "obliterate", "queue": "ingestion-queue"}])
    wait_until(lambda: not firing(mon, prom, "LangfuseQueueBacklog", queue="ingestion-queue"), 90,
               "LangfuseQueueBacklog resolved")


def test_a_stopped_redis_fires_redis_down(hosts, mon, prom):
    redis = hosts[REDIS]
    redis.check_output("systemctl stop redis-server")
    try:
        secs = wait_until(lambda: firing(mon, prom, "RedisDown", instance=REDIS), 90, "RedisDown firing")
        print(f"MEASURED RedisDown firing {secs:.0f} s after Redis stopped (for: 15s, scrape 5s)")
        # the exporter itself still answers: TargetDown is for a lost exporter, not a lost Redis
        assert not firing(mon, prom, "TargetDown", instance=REDIS, job="redis")
    finally:
        redis.check_output("systemctl start redis-server")
    wait_until(lambda: not firing(mon, prom, "RedisDown", instance=REDIS), 90, "RedisDown resolved")


def test_a_stopped_exporter_fires_target_down_and_reaches_alertmanager(hosts, mon, prom):
    hosts[NODE].check_output("systemctl stop prometheus-node-exporter")
    try:
        secs = wait_until(lambda: firing(mon, prom, "TargetDown", instance=NODE), 90, "TargetDown firing")
        print(f"MEASURED TargetDown firing {secs:.0f} s after the exporter stopped (for: 15s, scrape 5s)")
        am = f"http://{address(mon)}:9093"
        wait_until(lambda: any(a["labels"].get("instance") == NODE and a["labels"]["alertname"] == "TargetDown"
                               for a in get_json(mon, f"{am}/api/v2/alerts")), 30, "the alert in Alertmanager")
    finally:
        hosts[NODE].check_output("systemctl start prometheus-node-exporter")
    wait_until(lambda: not firing(mon, prom, "TargetDown", instance=NODE), 90, "TargetDown resolved")


def test_a_failed_backup_metric_fires_backup_failed(hosts, mon, prom):
    """The backup role's jobs write llmops_backup_* gauges to the textfile directory; one with a
    non-zero exit status, read by node_exporter, fires BackupFailed with the job's name."""
    node = hosts[NODE]
    path = "/var/lib/prometheus/node-exporter/llmops_backup_logical.prom"
    node.check_output("printf %s %s > %s", "%s", 'llmops_backup_last_exit_status{job="logical"} 1\n', path)
    try:
        wait_until(lambda: firing(mon, prom, "BackupFailed", instance=NODE, exported_job="logical"), 60,
                   "BackupFailed firing")
    finally:
        node.check_output("rm -f %s", path)


def test_a_public_url_without_https_fires_the_health_alert(hosts, mon, prom):
    """mon's blackbox_exporter probes monitoring_probe_public_url (here a host where nothing serves
    HTTPS): the probe fails while the exporter answers, LangfuseHealthCheckFailing fires for the
    langfuse_public job (for: 10s here), TargetDown does not; blackbox_exporter is open to the
    monitoring hosts only."""
    secs = wait_until(lambda: firing(mon, prom, "LangfuseHealthCheckFailing", job="langfuse_public"), 90,
                      "LangfuseHealthCheckFailing firing")
    print(f"MEASURED LangfuseHealthCheckFailing firing {secs:.0f} s into the test (for: 10s, scrape 5s)")
    assert [r["value"][1] for r in prometheus_query(mon, prom, 'probe_success{job="langfuse_public"}')] == ["0"]
    assert not firing(mon, prom, "TargetDown", job="langfuse_public")
    mon_addr = address(mon)
    assert f"{mon_addr}:9115" in mon.check_output("ss -Htln").split()
    assert not can_connect(hosts[OUTSIDE], mon_addr, 9115)


def test_every_dashboard_query_evaluates(mon, prom):
    """Each PromQL expression of the grafana role's dashboards answers without an error here (the
    full-stack scenario also checks that most of them have data)."""
    expressions = dashboard_expressions()
    assert len(expressions) >= 20
    assert not failing_queries(mon, prom, expressions)


def test_grafana_fails_before_any_change_when_its_repository_is_unreachable(mon):
    """apt.grafana.com cannot be reached from the test hosts: the role stops in its preflight, naming
    the repository, and the host has no key, source, package or configuration of Grafana."""
    run = run_playbook("grafana.yml")
    assert run.returncode != 0
    flat = " ".join(run.stdout.split())
    assert (f"Grafana's apt repository cannot be reached from {MON}: "
            "GET https://apt.grafana.com/gpg.key answered") in flat, run.stdout[-3000:]
    assert "Nothing was changed on the host." in flat
    assert "molecule-Grafana-Test-8Rw2" not in run.stdout
    counters = recap(run.stdout)
    assert counters[MON]["changed"] == 0 and counters[MON]["failed"] == 1, counters
    for path in ("/etc/apt/keyrings/grafana.asc", "/etc/apt/sources.list.d/grafana.sources", "/etc/grafana"):
        assert not mon.file(path).exists, path
    assert mon.run("dpkg-query -W grafana").rc != 0


def test_check_mode_changes_nothing():
    run = run_playbook("converge.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    counters = recap(run.stdout)
    assert counters and all(c["changed"] == 0 for c in counters.values()), counters
