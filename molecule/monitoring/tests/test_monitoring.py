"""Behaviour of the node_exporter and monitoring roles: Debian's Prometheus and Alertmanager on
monitoring-mon scrape node_exporter on every host; the collection's alert rules pass promtool's
unit tests and fire for real (a stopped exporter, a failed backup's metric); the exporter and the
web interfaces answer the monitoring hosts only."""
import json
import time
from pathlib import Path

import pytest
from conftest import address, can_connect, recap, run_playbook

MON, NODE, OUTSIDE = "monitoring-mon", "monitoring-node", "monitoring-outside"
TESTS = Path(__file__).parent


def get_json(host, url: str):
    code = (
        "import json,sys,urllib.request\n"
        f"print(urllib.request.urlopen({url!r}, timeout=10).read().decode())\n"
    )
    return json.loads(host.check_output("python3 -c %s", code))


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
    expected = {("node", MON), ("node", NODE), ("node", OUTSIDE), ("prometheus", MON), ("alertmanager", MON)}

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


def test_check_mode_changes_nothing():
    run = run_playbook("converge.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    counters = recap(run.stdout)
    assert counters and all(c["changed"] == 0 for c in counters.values()), counters
