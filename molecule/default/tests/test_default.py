"""The whole stack, end to end, with the lab's settings: HTTPS through the load balancer reaches
both app hosts, an ingestion is read back and its row is on the replica, the firewall matrix
holds, and a rolling upgrade under load fails no request."""
import json
import os
import shlex
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import (address, can_connect, dashboard_expressions, failing_queries, get_json, prometheus_query,
                      run_playbook)

ROOT = Path(__file__).resolve().parents[3]
VAULT = ROOT / "inventories" / "lab" / "group_vars" / "all" / "vault.yml"
LB, APP1, APP2, PG1, PG2, REDIS, MON, CLIENT = (
    "default-lb", "default-app1", "default-app2", "default-pg1", "default-pg2", "default-redis1",
    "default-mon1", "default-client")


@pytest.fixture(scope="module")
def secrets():
    return yaml.safe_load(VAULT.read_text())


def curl(client, url, *args):
    """HTTP status and body of a request from the client (TLS verified against the lab CA)."""
    argv = ["curl", "-sS", "--max-time", "20", "--cacert", "/tmp/llmops-ca.crt", "-o", "/tmp/body",
            "-w", "%{http_code}", *args, url]
    out = client.run(" ".join(shlex.quote(a) for a in argv))
    return out.stdout.strip(), client.run("cat /tmp/body").stdout


@pytest.fixture(scope="module")
def client(hosts):
    """The client, trusting the CA the nginx role fetched to the controller."""
    host = hosts[CLIENT]
    # nginx_tls_ca_fetch_dest's default: <inventory_dir>-tls/<lb>-ca.crt
    inventory_dir = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    ca = inventory_dir.parent / f"{inventory_dir.name}-tls" / f"{LB}-ca.crt"
    assert ca.exists(), f"the nginx role did not fetch its CA to {ca}"
    host.run("cat > /tmp/llmops-ca.crt <<'EOF'\n%s\nEOF" % ca.read_text().strip())
    return host


def lb_url(hosts, path):
    return f"https://{address(hosts[LB])}{path}"


def test_https_reaches_both_app_hosts_through_the_lb(hosts, client):
    for _request in range(20):
        status, _body = curl(client, lb_url(hosts, "/api/public/health"))
        assert status == "200"
    apps = {f"{address(hosts[APP1])}:3000", f"{address(hosts[APP2])}:3000"}
    lines = hosts[LB].check_output("tail -n 20 /var/log/nginx/langfuse_access.json").splitlines()
    upstreams = {json.loads(line).get("upstream_addr") for line in lines}
    assert apps <= upstreams, upstreams


def test_plain_http_is_redirected(hosts, client):
    out = client.check_output("curl -s -o /dev/null -w '%%{http_code} %%{redirect_url}' http://%s/",
                              address(hosts[LB]))
    assert out.startswith(("301 https://", "308 https://")), out


def test_ingestion_is_read_back_and_replicated(hosts, client, secrets):
    trace_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    batch = {"batch": [{"id": event_id, "type": "trace-create", "timestamp": "2026-11-26T12:00:00.000Z",
                        "body": {"id": trace_id, "name": "molecule-default"}}]}
    auth = f"{secrets['vault_langfuse_init_project_public_key']}:{secrets['vault_langfuse_init_project_secret_key']}"
    status, body = curl(client, lb_url(hosts, "/api/public/ingestion"), "-u", auth,
                        "-H", "Content-Type: application/json", "--data", json.dumps(batch))
    assert status == "207", body
    assert json.loads(body)["successes"][0]["id"] == event_id
    status, body = curl(client, lb_url(hosts, f"/api/public/traces/{trace_id}"), "-u", auth)
    assert status == "200", body
    assert json.loads(body)["name"] == "molecule-default"
    # the row is on the replica
    query = f"SELECT count(*) FROM standin_events WHERE id = '{event_id}'"
    for _attempt in range(20):
        out = hosts[PG2].run("runuser -u postgres -- psql -XAtq -d langfuse -c %s", query)
        if out.stdout.strip() == "1":
            break
        time.sleep(0.1)
    assert out.stdout.strip() == "1", out.stderr
    # a wrong key is refused
    status, _body = curl(client, lb_url(hosts, f"/api/public/traces/{trace_id}"), "-u", "pk-lf-wrong:sk-lf-wrong")
    assert status == "401"


@pytest.mark.parametrize("src,dst,port,allowed", [
    (APP1, PG1, 5432, True), (APP2, PG1, 5432, True), (PG2, PG1, 5432, True), (MON, PG1, 5432, False),
    (APP1, REDIS, 6379, True), (APP2, REDIS, 6379, True), (MON, REDIS, 6379, True),
    (LB, APP1, 3000, True), (LB, APP2, 3000, True), (CLIENT, LB, 443, True),
    (LB, PG1, 5432, False), (LB, REDIS, 6379, False), (CLIENT, APP1, 3000, False),
    (CLIENT, PG1, 5432, False), (CLIENT, REDIS, 6379, False), (CLIENT, PG2, 5432, False),
    (MON, REDIS, 9121, True), (APP1, REDIS, 9121, False),
    (MON, PG1, 9187, True), (MON, PG2, 9187, True), (APP1, PG1, 9187, False), (CLIENT, PG2, 9187, False),
    # blackbox_exporter: open to the monitoring host only; the worker it probes stays on loopback
    (MON, APP1, 9115, True), (MON, APP2, 9115, True), (CLIENT, APP1, 9115, False), (LB, APP2, 9115, False),
    (MON, APP1, 3030, False), (LB, APP1, 3030, False),
    # the nginx exporter and mtail on the LB: open to the monitoring host only; stub_status on loopback
    (MON, LB, 9113, True), (MON, LB, 3903, True), (CLIENT, LB, 9113, False), (CLIENT, LB, 3903, False),
    (APP1, LB, 3903, False), (MON, LB, 8080, False),
])
def test_firewall_matrix(hosts, src, dst, port, allowed):
    assert can_connect(hosts[src], address(hosts[dst]), port) is allowed


def test_rolling_upgrade_under_load_fails_no_request(hosts, client):
    next_version = os.environ["LLMOPS_STANDIN_LANGFUSE_VERSION_NEXT"]
    url = lb_url(hosts, "/api/public/health")
    client.run("systemctl stop llmops-load; systemctl reset-failed llmops-load")
    client.check_output(
        "systemd-run --unit llmops-load --property=StandardOutput=file:/tmp/hey.txt "
        "hey -z 900s -c 2 -q 10 -disable-keepalive %s", url)
    try:
        out = run_playbook("upgrade.yml", "-e", yaml.safe_dump({
            "langfuse_version": next_version,
            "langfuse_web_image": os.environ["LLMOPS_STANDIN_WEB_IMAGE_NEXT"],
            "langfuse_worker_image": os.environ["LLMOPS_STANDIN_WORKER_IMAGE_NEXT"],
        }, default_flow_style=True))
        assert out.returncode == 0, out.stdout[-4000:]
    finally:
        # hey prints its report when interrupted
        client.run("systemctl kill --signal=SIGINT llmops-load")
        for _attempt in range(50):
            if client.run("systemctl is-active llmops-load").stdout.strip() != "active":
                break
            time.sleep(0.2)
    report = client.check_output("cat /tmp/hey.txt")
    assert "Status code distribution:" in report, report
    codes = [line.split()[0] for line in report.split("Status code distribution:")[1].splitlines() if "responses" in line]
    assert codes == ["[200]"], report
    assert "Error distribution" not in report, report
    for app in (APP1, APP2):
        health = json.loads(hosts[app].check_output(
            "curl -s http://%s:3000/api/public/health", address(hosts[app])))
        assert health["version"] == next_version


def prom(hosts):
    """mon1's Prometheus, asked from mon1 itself."""
    return f"http://{address(hosts[MON])}:9090"


def test_prometheus_scrapes_every_host_and_the_backup_metrics(hosts):
    """mon1's Prometheus (llmops.langfuse.monitoring) has every host's node_exporter and the Redis
    host's redis_exporter up, and the backup jobs' gauges of the primary arrive through
    node_exporter's textfile directory."""

    def query(expr):
        return prometheus_query(hosts[MON], prom(hosts), expr)

    every = {LB, APP1, APP2, PG1, PG2, REDIS, MON, CLIENT}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        up = {r["metric"]["instance"] for r in query('up{job="node"} == 1')}
        if up == every:
            break
        time.sleep(3)
    assert up == every, every - up
    # redis_exporter on the Redis host, with the length of Langfuse's ingestion queue (0: empty)
    assert [r["metric"]["instance"] for r in query('up{job="redis"} == 1')] == [REDIS]
    assert [r["value"][1] for r in query('redis_up')] == ["1"]
    assert len(query('redis_key_size{key="bull:ingestion-queue:wait"}')) == 1
    status = {r["metric"].get("exported_job"): r["value"][1]
              for r in query(f'llmops_backup_last_exit_status{{instance="{PG1}"}}')}
    assert status.get("logical") == "0", status
    assert not query('ALERTS{alertname="TargetDown", alertstate="firing"}')


def test_postgres_exporter_reports_the_replica_streaming(hosts):
    """postgres_exporter on both database hosts (llmops.langfuse.postgres_exporter) reads its
    server as the monitoring role over loopback: pg1 is the primary with its one standby
    streaming, pg2 a standby with a lag figure, connections against max_connections on both;
    no PostgreSQL alert fires."""

    def query(expr):
        return prometheus_query(hosts[MON], prom(hosts), expr)

    def by_instance(expr):
        return {r["metric"]["instance"]: float(r["value"][1]) for r in query(expr)}

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if by_instance('pg_up') == {PG1: 1.0, PG2: 1.0} and by_instance('llmops_pg_replication_is_primary'):
            break
        time.sleep(3)
    assert by_instance('pg_up') == {PG1: 1.0, PG2: 1.0}
    roles = {r["metric"]["instance"]: r["metric"]["pg_role"] for r in query('up{job="postgresql"} == 1')}
    assert roles == {PG1: "primary", PG2: "replica"}
    assert by_instance('llmops_pg_replication_is_primary') == {PG1: 1.0, PG2: 0.0}
    assert by_instance('llmops_pg_replication_streaming_standbys')[PG1] == 1.0
    lag = by_instance('llmops_pg_replication_lag_seconds')
    assert set(lag) == {PG1, PG2} and lag[PG1] == 0.0 and 0.0 <= lag[PG2] < 30, lag
    in_use, most = by_instance('llmops_pg_connections_in_use'), by_instance('llmops_pg_connections_max')
    assert set(in_use) == set(most) == {PG1, PG2} and all(0 < in_use[h] < most[h] for h in in_use), (in_use, most)
    assert not query('ALERTS{alertname=~"PostgreSQL.*", alertstate="firing"}')
    # the exporter's password is in its file, not in its environment or command line
    for host in (PG1, PG2):
        pid = hosts[host].check_output("systemctl show -p MainPID --value prometheus-postgres-exporter")
        environ = hosts[host].check_output("tr '\\0' '\\n' < /proc/%s/environ", pid)
        assert "DATA_SOURCE_PASS_FILE=/etc/prometheus/postgres-exporter-password" in environ
        assert "DATA_SOURCE_PASS=" not in environ.replace("DATA_SOURCE_PASS_FILE=", "")


def mtail_count(hosts, status):
    """mtail's count of the LB's responses with this status, read from mon1 (0 before the first)."""
    text = hosts[MON].check_output("curl -sS --max-time 20 http://%s:3903/metrics", address(hosts[LB]))
    for line in text.splitlines():
        if line.startswith("llmops_nginx_responses_total{") and f'status="{status}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_nginx_exporter_and_mtail_count_the_lb_responses(hosts, client):
    """The LB's nginx exporter reads stub_status (nginx_up, requests) and mtail counts the JSON
    access log by status (llmops.langfuse.nginx_exporter): five refused requests add exactly five
    401s, and Prometheus has both jobs up and the counts; no nginx alert fires."""

    def query(expr):
        return prometheus_query(hosts[MON], prom(hosts), expr)

    before = mtail_count(hosts, "401")
    for _request in range(5):
        status, _body = curl(client, lb_url(hosts, "/api/public/projects"), "-u", "pk-lf-wrong:sk-lf-wrong")
        assert status == "401"
    deadline = time.monotonic() + 20
    while mtail_count(hosts, "401") < before + 5 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert mtail_count(hosts, "401") == before + 5
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        counted = query(f'llmops_nginx_responses_total{{instance="{LB}", status="401"}}')
        if counted and float(counted[0]["value"][1]) >= before + 5:
            break
        time.sleep(3)
    assert counted and float(counted[0]["value"][1]) >= before + 5, counted
    assert [r["value"][1] for r in query(f'nginx_up{{instance="{LB}"}}')] == ["1"]
    assert float(query(f'nginx_http_requests_total{{instance="{LB}"}}')[0]["value"][1]) > 5
    assert {r["metric"]["job"] for r in query(f'up{{instance="{LB}", job=~"nginx|nginx_log"}} == 1')} == {
        "nginx", "nginx_log"}
    assert not query('ALERTS{alertname=~"Nginx.*", alertstate="firing"}')


def probe(hosts, app, target):
    """One probe of an app host's blackbox_exporter, asked from mon1: (probe_success, status code)."""
    query = urllib.parse.urlencode({"module": "langfuse_health", "target": target})
    text = hosts[MON].check_output("curl -sS --max-time 20 %s", f"http://{address(hosts[app])}:9115/probe?{query}")
    values = dict(line.split(" ", 1) for line in text.splitlines() if line.startswith("probe_"))
    return float(values["probe_success"]), float(values["probe_http_status_code"])


def test_blackbox_probes_every_web_worker_and_the_lb(hosts):
    """blackbox_exporter (llmops.langfuse.blackbox_exporter): each app host probes its web with the
    database check and its loopback-only worker with the stuck-queue check, mon1 probes the load
    balancer over HTTPS with the lab CA; all succeed with 200 and a certificate valid for more than
    14 days, no health alert fires; a stopped worker fails its probe and passes again once started."""

    def query(expr):
        return prometheus_query(hosts[MON], prom(hosts), expr)

    def success(job):
        return {r["metric"]["instance"]: r["value"][1] for r in query(f'probe_success{{job="{job}"}}')}

    expected = {"langfuse_web": {APP1: "1", APP2: "1"}, "langfuse_worker": {APP1: "1", APP2: "1"},
                "langfuse_lb": {LB: "1"}}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = {job: success(job) for job in expected}
        if seen == expected:
            break
        time.sleep(3)
    assert seen == expected
    codes = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1]
             for r in query('probe_http_status_code{job=~"langfuse_.*"}')}
    assert set(codes.values()) == {"200"} and len(codes) == 5, codes
    days = [float(r["value"][1]) for r in query('(probe_ssl_earliest_cert_expiry{job="langfuse_lb"} - time()) / 86400')]
    assert len(days) == 1 and days[0] > 14, days
    targets = get_json(hosts[MON], f"{prom(hosts)}/api/v1/targets?state=active")["data"]["activeTargets"]
    urls = {t["labels"]["instance"]: t["scrapeUrl"] for t in targets if t["labels"]["job"] == "langfuse_worker"}
    assert all("failIfQueueConsumptionStuck%3Dtrue" in u and "127.0.0.1%3A3030" in u for u in urls.values()), urls
    assert not query('ALERTS{alertname=~"LangfuseHealthCheckFailing|TLSCertificateExpiringSoon", alertstate="firing"}')

    worker = "http://127.0.0.1:3030/api/health?failIfQueueConsumptionStuck=true"
    assert probe(hosts, APP2, worker) == (1.0, 200.0)
    hosts[APP2].check_output("docker stop langfuse-worker")
    try:
        assert probe(hosts, APP2, worker)[0] == 0.0
        assert probe(hosts, APP1, worker) == (1.0, 200.0)
    finally:
        hosts[APP2].check_output("docker start langfuse-worker")
    deadline = time.monotonic() + 60
    while probe(hosts, APP2, worker) != (1.0, 200.0) and time.monotonic() < deadline:
        time.sleep(2)
    assert probe(hosts, APP2, worker) == (1.0, 200.0)


def test_every_alert_rule_evaluates_against_the_live_prometheus(hosts):
    """Each loaded rule's expression, queried on mon1's Prometheus, answers without an error (a
    rule over a metric no exporter has would still answer: an empty result, which is why the
    tests above check the series themselves)."""
    groups = get_json(hosts[MON], f"{prom(hosts)}/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {"TargetDown", "RedisDown", "LangfuseQueueBacklog", "PostgreSQLReplicaMissing",
            "LangfuseHealthCheckFailing", "TLSCertificateExpiringSoon", "NginxServerErrors",
            "NginxRateLimited"} <= {r["name"] for r in rules}
    for rule in rules:
        assert rule["health"] == "ok", rule
    assert not failing_queries(hosts[MON], prom(hosts), [rule["query"] for rule in rules])
    # and every query of the grafana role's dashboards (Grafana itself does not run here: its
    # repository is unreachable), most of them with data
    expressions = dashboard_expressions()
    assert len(expressions) >= 20 and not failing_queries(hosts[MON], prom(hosts), expressions)
    empty = [e for e in expressions if not prometheus_query(hosts[MON], prom(hosts), e)]
    assert len(empty) <= len(expressions) // 4, empty
