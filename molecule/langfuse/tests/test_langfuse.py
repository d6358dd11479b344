"""Behaviour of the langfuse role: the Compose project on the app host (stand-in images for
Langfuse, ClickHouse and MinIO) against the real PostgreSQL (PgBouncer) and Redis of the
collection's roles. What a pass proves and what it does not: tests/standins/README.md."""
import base64
import json
import os
import time
import urllib.parse
import uuid

import pytest
import yaml
from conftest import SCENARIO_DIR, can_connect, recap, run_playbook

APP, PG, REDIS = "langfuse-app", "langfuse-pg", "langfuse-redis"
PLAYBOOK = "langfuse.yml"  # the Langfuse play alone (facts of the other hosts: fact cache)
CONTAINERS = ("langfuse-web", "langfuse-worker", "langfuse-clickhouse", "langfuse-minio")
ENV_FILES = ("langfuse.env", "web.env", "worker.env", "clickhouse.env", "minio.env")

_INVENTORY = yaml.safe_load((SCENARIO_DIR / "molecule.yml").read_text())["provisioner"]["inventory"]["group_vars"]


def _var(group: str, name: str) -> str:
    # molecule expands environment variables in molecule.yml: "$$" is a literal "$"
    return str(_INVENTORY[group][name]).replace("$$", "$")


PG_PASSWORD = _var("all", "llmops_postgresql_password")
PUBLIC_KEY = _var("langfuse_app", "langfuse_init_project_public_key")
SECRET_KEY = _var("langfuse_app", "langfuse_init_project_secret_key")
CH_PASSWORD = _var("langfuse_app", "llmops_clickhouse_password")
SECRETS = [PG_PASSWORD, urllib.parse.quote(PG_PASSWORD, safe=""), CH_PASSWORD, SECRET_KEY,
           _var("all", "llmops_redis_password"), _var("all", "redis_admin_password")] + [
    _var("langfuse_app", name) for name in (
        "langfuse_salt", "langfuse_nextauth_secret", "langfuse_encryption_key", "llmops_s3_secret_key",
        "langfuse_init_user_password")]


def address(host) -> str:
    """The host's private address: the source address of its default route (conftest's address()
    takes the first of `hostname -I`, which is docker0's on the app host)."""
    route = host.check_output("ip -4 -o route get 192.0.2.1").split()
    return route[route.index("src") + 1]


def flat(text: str) -> str:
    """Output with every run of whitespace as one space (the yaml callback wraps long messages)."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def app(hosts):
    return hosts[APP]


@pytest.fixture(scope="module")
def app_addr(app):
    return address(app)


def http(host, method: str, url: str, auth: tuple | None = None, body=None) -> tuple[int, dict | str]:
    """An HTTP request made on a test host (python3 there); returns (status, JSON or text)."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    code = (
        "import json,sys,urllib.request,urllib.error\n"
        f"req = urllib.request.Request({url!r}, method={method!r}, headers={headers!r},"
        f" data={json.dumps(body).encode() if body is not None else None!r})\n"
        "try:\n"
        "    resp = urllib.request.urlopen(req, timeout=10)\n"
        "    status, text = resp.status, resp.read().decode()\n"
        "except urllib.error.HTTPError as exc:\n"
        "    status, text = exc.code, exc.read().decode()\n"
        "print(json.dumps([status, text]))\n"
    )
    out = host.check_output("python3 -c %s", code)
    status, text = json.loads(out)
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def container_ids(app) -> dict[str, str]:
    return {name: app.check_output("docker inspect --format '{{.Id}}' %s", name) for name in CONTAINERS}


def container_env(app, name: str) -> dict[str, str]:
    env = json.loads(app.check_output("docker inspect --format '{{json .Config.Env}}' %s", name))
    return dict(item.split("=", 1) for item in env)


def test_every_container_runs_and_is_healthy(app):
    for name in CONTAINERS:
        state = json.loads(app.check_output("docker inspect --format '{{json .State}}' %s", name))
        assert state["Running"] and state["Health"]["Status"] == "healthy", (name, state)
        assert app.check_output("docker inspect --format '{{.HostConfig.NetworkMode}}' %s", name) == "host"


def test_env_files_are_root_only(app):
    for name in ENV_FILES:
        env_file = app.file(f"/opt/langfuse/{name}")
        assert (env_file.user, env_file.group, env_file.mode) == ("root", "root", 0o600), name
    assert app.file("/opt/langfuse/compose.yaml").content_string.startswith("#")
    assert CH_PASSWORD not in app.file("/opt/langfuse/compose.yaml").content_string
    users = app.file("/opt/langfuse/clickhouse/langfuse-user.xml").content_string
    assert CH_PASSWORD not in users and "<password_sha256_hex>" in users


def test_web_health_checks_the_database(app, app_addr):
    status, body = http(app, "GET", f"http://{app_addr}:3000/api/public/health?failIfDatabaseUnavailable=true")
    assert status == 200 and body["status"] == "OK", body
    assert body["version"] == os.environ["LLMOPS_STANDIN_LANGFUSE_VERSION"]


def test_worker_health_checks_redis_and_postgresql(app):
    status, body = http(app, "GET", "http://127.0.0.1:3030/api/health")
    assert status == 200 and body["status"] == "OK", body


def test_web_listens_on_the_private_address_and_the_worker_on_loopback(app, app_addr):
    listening = app.check_output("ss -Htln").split()
    assert f"{app_addr}:3000" in listening and "0.0.0.0:3000" not in listening
    assert "127.0.0.1:3030" in listening and f"{app_addr}:3030" not in listening
    assert f"{app_addr}:9090" in listening and "127.0.0.1:9091" in listening


def test_environment_as_the_containers_see_it(app, app_addr, hosts):
    web, worker = container_env(app, "langfuse-web"), container_env(app, "langfuse-worker")
    pg_addr = address(hosts[PG])
    assert web["HOSTNAME"] == app_addr and web["PORT"] == "3000"
    assert worker["HOSTNAME"] == "127.0.0.1" and worker["PORT"] == "3030"
    assert web["NEXTAUTH_URL"] == "https://langfuse.test.internal:8443"
    assert "NEXTAUTH_SECRET" not in worker and "LANGFUSE_INIT_ORG_ID" not in worker
    # through PgBouncer, migrations directly; the password percent-encoded
    database = urllib.parse.urlsplit(web["DATABASE_URL"])
    assert (database.hostname, database.port) == (pg_addr, 6432)
    assert urllib.parse.unquote(database.password) == PG_PASSWORD
    assert "pgbouncer=true" in database.query and "connection_limit=10" in database.query
    direct = urllib.parse.urlsplit(web["DIRECT_URL"])
    assert (direct.port, urllib.parse.unquote(direct.password)) == (5432, PG_PASSWORD)
    # Redis over TLS, with the CA and the client certificate mounted read-only
    redis = urllib.parse.urlsplit(web["REDIS_CONNECTION_STRING"])
    assert (redis.scheme, redis.hostname, redis.port, redis.username) == (
        "rediss", address(hosts[REDIS]), 6380, "langfuse")
    for env in (web, worker):
        assert env["REDIS_TLS_ENABLED"] == "true"
        assert env["REDIS_TLS_CA_PATH"] == "/etc/langfuse/redis-tls/ca.crt"
        assert env["REDIS_TLS_CERT_PATH"] == "/etc/langfuse/redis-tls/client.crt"
        assert env["REDIS_TLS_KEY_PATH"] == "/etc/langfuse/redis-tls/client.key"
    # single-quoted in the env file: "$" reaches the container literally
    assert web["CLICKHOUSE_PASSWORD"] == CH_PASSWORD and "$" in CH_PASSWORD
    assert web["CLICKHOUSE_CLUSTER_ENABLED"] == "false"
    assert web["CLICKHOUSE_URL"] == f"http://{app_addr}:8123"
    assert web["CLICKHOUSE_MIGRATION_URL"] == f"clickhouse://{app_addr}:9000"
    assert web["LANGFUSE_S3_EVENT_UPLOAD_ENDPOINT"] == f"http://{app_addr}:9090"
    # MinIO on the host's file system: key segments within ext4's 255-byte file names
    assert web["LANGFUSE_S3_EVENT_KEY_MAX_SEGMENT_BYTES"] == worker["LANGFUSE_S3_EVENT_KEY_MAX_SEGMENT_BYTES"] == "255"
    assert web["LANGFUSE_S3_EVENT_UPLOAD_FORCE_PATH_STYLE"] == "true"
    assert web["LANGFUSE_MIGRATION_V4_WRITE_MODE"] == worker["LANGFUSE_MIGRATION_V4_WRITE_MODE"] == "dual"


def test_web_and_worker_run_with_their_limits_and_node_heap(app):
    """web: the role's defaults (2 CPUs, 4g, heap 75% = 3072 MiB); worker: the scenario's 1 CPU,
    1g (heap 768 MiB). The kernel applies them: the containers' own cgroup files say so."""
    expected = {"langfuse-web": (2, 4 * 1024**3, 3072), "langfuse-worker": (1, 1024**3, 768)}
    for name, (cpus, memory, heap) in expected.items():
        host_config = json.loads(app.check_output(f"docker inspect -f '{{{{json .HostConfig}}}}' {name}"))
        assert (host_config["NanoCpus"], host_config["Memory"]) == (cpus * 10**9, memory), name
        # cgroup v2 (Debian 12/13 hosts) or v1 (this test machine)
        limit = app.check_output(f"docker exec {name} sh -c 'cat /sys/fs/cgroup/memory.max 2>/dev/null "
                                 "|| cat /sys/fs/cgroup/memory/memory.limit_in_bytes'")
        quota = app.check_output(f"docker exec {name} sh -c 'cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "
                                 "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)'")
        assert limit == str(memory), (name, limit)
        assert quota.split() == [str(cpus * 100000), "100000"], (name, quota)
        assert container_env(app, name)["NODE_OPTIONS"] == f"--max-old-space-size={heap}", name
    # the initial project's retention reaches web (LANGFUSE_INIT_PROJECT_RETENTION), not worker
    assert container_env(app, "langfuse-web")["LANGFUSE_INIT_PROJECT_RETENTION"] == "30"
    assert "LANGFUSE_INIT_PROJECT_RETENTION" not in container_env(app, "langfuse-worker")


def test_trace_is_ingested_processed_and_read_back(app, app_addr):
    base = f"http://{app_addr}:3000/api/public"
    trace_id = str(uuid.uuid4())
    event = {"id": str(uuid.uuid4()), "type": "trace-create", "timestamp": "2026-01-01T00:00:00.000Z",
             "body": {"id": trace_id, "name": "molecule-probe", "input": {"q": "ping"}}}
    status, body = http(app, "POST", f"{base}/ingestion", (PUBLIC_KEY, SECRET_KEY), {"batch": [event]})
    assert status == 207 and body["errors"] == [] and body["successes"][0]["status"] == 201, body
    assert http(app, "GET", f"{base}/traces/{trace_id}", (PUBLIC_KEY, SECRET_KEY + "x"))[0] == 401
    deadline = time.monotonic() + 60
    while True:
        status, trace = http(app, "GET", f"{base}/traces/{trace_id}", (PUBLIC_KEY, SECRET_KEY))
        assert status == 200, trace
        # web -> S3 -> Redis -> worker -> S3 -> ClickHouse -> PostgreSQL
        if trace["standin"]["processedByWorker"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert trace["id"] == trace_id and trace["name"] == "molecule-probe"
    assert trace["standin"]["processedByWorker"], trace


def test_clickhouse_user_and_settings(app, app_addr):
    def query(password: str):
        return app.run("curl -s -o /dev/stderr -w '%%{http_code}' -u %s http://%s:8123/ --data-binary %s",
                       f"langfuse:{password}", app_addr, "SELECT 1")
    assert query(CH_PASSWORD).stdout == "200"
    refused = query(CH_PASSWORD + "x")
    assert refused.stdout == "403" and "AUTHENTICATION_FAILED" in refused.stderr
    assert app.check_output("docker exec langfuse-clickhouse sh -c 'ulimit -n'") == "16384"
    assert app.check_output("docker inspect --format '{{.HostConfig.Memory}}' langfuse-clickhouse") == str(1024 ** 3)
    settings = app.check_output("docker exec langfuse-clickhouse cat /etc/clickhouse-server/config.d/llmops.xml")
    assert "<trace_log remove=\"1\"/>" in settings and "<text_log remove=\"1\"/>" in settings
    assert "<ttl>event_date + INTERVAL 7 DAY DELETE</ttl>" in settings
    assert "<max_server_memory_usage_to_ram_ratio>0.75<" in settings
    listen = app.check_output(
        "docker exec langfuse-clickhouse cat /etc/clickhouse-server/config.d/docker_related_config.xml")
    assert f"<listen_host>{app_addr}</listen_host>" in listen and "0.0.0.0" not in listen.split("-->")[-1]


def test_ports_are_open_to_their_clients_only(hosts, app_addr):
    lb, outside = hosts[PG], hosts[REDIS]  # langfuse-pg is also in langfuse_lb
    assert can_connect(lb, app_addr, 3000)
    for port in (3000, 3030, 8123, 9000, 9090, 9091):
        assert not can_connect(outside, app_addr, port), port
    for port in (8123, 9000, 9090):  # data stores: the app hosts only
        assert not can_connect(lb, app_addr, port), port


TLS_PROBE = """
import socket, ssl, sys
host, port, ca, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
try:
    sock = socket.create_connection((host, port), timeout=5)
except OSError as exc:
    print("closed", type(exc).__name__); sys.exit(0)
if ca == "-":  # plain RESP
    sock.sendall(b"PING\\r\\n")
    print("plain", sock.recv(200)); sys.exit(0)
ctx = ssl.create_default_context(cafile=ca)
if cert != "-":
    ctx.load_cert_chain(cert, key)
try:
    tls = ctx.wrap_socket(sock, server_hostname=host)
    tls.sendall(b"PING\\r\\n")
    reply = tls.recv(200)
    print("tls", tls.version(), reply)
except (OSError, ssl.SSLError) as exc:
    print("refused", type(exc).__name__)
"""


def tls_probe(host, redis_addr: str, port: int, ca: str = "-", cert: str = "-", key: str = "-") -> str:
    return host.check_output("python3 -c %s %s %s %s %s %s", TLS_PROBE, redis_addr, str(port), ca, cert, key)


def test_redis_is_reached_over_tls_only_with_the_client_certificate(app, hosts):
    """The plain port is closed; the TLS port verifies against the mounted CA and answers only a
    client that shows the certificate the role gave this host; the key is the containers' alone."""
    redis_addr, tls_dir = address(hosts[REDIS]), "/opt/langfuse/redis-tls"
    assert tls_probe(app, redis_addr, 6379).startswith("closed"), "the plain port answers"
    with_cert = tls_probe(app, redis_addr, 6380, f"{tls_dir}/ca.crt", f"{tls_dir}/client.crt", f"{tls_dir}/client.key")
    assert with_cert.startswith("tls TLSv1.") and "NOAUTH" in with_cert, with_cert
    without_cert = tls_probe(app, redis_addr, 6380, f"{tls_dir}/ca.crt")
    assert without_cert.startswith("refused"), without_cert
    key = app.file(f"{tls_dir}/client.key")
    assert (key.uid, key.gid, key.mode) == (0, 1001, 0o640)
    # the worker's health checks its Redis connection (TLS) on every request
    status, body = http(app, "GET", "http://127.0.0.1:3030/api/health")
    assert status == 200 and body["status"] == "OK", body


def test_wrong_redis_password_fails_with_a_message_naming_redis(app, hosts):
    before = container_ids(app)
    run = run_playbook(PLAYBOOK, "-e", "langfuse_redis_password=wrong-password-0123456789")
    assert run.returncode != 0
    redis_addr = address(hosts[REDIS])
    assert (f"Redis at {redis_addr}:6380 refused the langfuse user's password (WRONGPASS): check "
            "llmops_redis_password") in flat(run.stdout), run.stdout[-3000:]
    assert "wrong-password-0123456789" not in run.stdout
    counters = recap(run.stdout)[APP]
    assert counters["failed"] == 1 and counters["changed"] == 0, counters
    assert container_ids(app) == before


def test_rerun_changes_nothing_recreates_nothing_and_prints_no_secret(app, hosts):
    # the scenario's idempotence check (molecule.yml has no separate step): the whole converge
    before = container_ids(app)
    run = run_playbook("converge.yml", "-v", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    # nothing changes on any host
    counters = recap(run.stdout)
    assert set(counters) == set(hosts) and all(c["changed"] == 0 for c in counters.values()), run.stdout[-5000:]
    for secret in SECRETS:
        assert secret not in run.stdout
    assert container_ids(app) == before


@pytest.fixture(scope="module")
def restore():
    """The scenario's settings back, once after the tests that change them (one run for both)."""
    yield
    run = run_playbook(PLAYBOOK)
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.usefixtures("restore")
def test_a_change_recreates_only_the_containers_that_use_it(app, app_addr):
    before = container_ids(app)
    # a web-only variable and a ClickHouse setting (a mounted file, not an env file)
    run = run_playbook(PLAYBOOK, "-e", json.dumps({"langfuse_web_env_extra": {"LLMOPS_PROBE": "1"},
                                                   "langfuse_clickhouse_memory_ratio": 0.5}))
    assert run.returncode == 0, run.stdout[-3000:]
    after = container_ids(app)
    assert after["langfuse-web"] != before["langfuse-web"]
    assert after["langfuse-clickhouse"] != before["langfuse-clickhouse"]
    assert after["langfuse-worker"] == before["langfuse-worker"]
    assert after["langfuse-minio"] == before["langfuse-minio"]
    assert container_env(app, "langfuse-web")["LLMOPS_PROBE"] == "1"
    assert "LLMOPS_PROBE" not in container_env(app, "langfuse-worker")
    assert http(app, "GET", f"http://{app_addr}:3000/api/public/health?failIfDatabaseUnavailable=true")[0] == 200


def _started(app, name: str) -> str:
    return app.check_output("docker inspect --format '{{.State.StartedAt}}' %s", name)


@pytest.mark.usefixtures("restore")
def test_upgrade_starts_web_alone_first(app, app_addr):
    before = container_ids(app)
    upgrade = {"langfuse_version": os.environ["LLMOPS_STANDIN_LANGFUSE_VERSION_NEXT"],
               "langfuse_web_image": os.environ["LLMOPS_STANDIN_WEB_IMAGE_NEXT"],
               "langfuse_worker_image": os.environ["LLMOPS_STANDIN_WORKER_IMAGE_NEXT"]}
    run = run_playbook(PLAYBOOK, "-e", json.dumps(upgrade))
    assert run.returncode == 0, run.stdout[-3000:]
    assert "changed: [langfuse-app]" in run.stdout.split("Start web alone")[1].split("TASK [")[0]
    # web (which migrates) was running the new release before the worker was recreated
    assert _started(app, "langfuse-web") < _started(app, "langfuse-worker")
    after = container_ids(app)
    assert after["langfuse-web"] != before["langfuse-web"] and after["langfuse-worker"] != before["langfuse-worker"]
    assert after["langfuse-minio"] == before["langfuse-minio"]
    status, body = http(app, "GET", f"http://{app_addr}:3000/api/public/health")
    assert status == 200 and body["version"] == upgrade["langfuse_version"]
    assert app.check_output("docker inspect --format '{{.Config.Image}}' langfuse-worker") == (
        upgrade["langfuse_worker_image"])
