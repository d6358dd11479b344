"""Broken inventories and variable sets fed to the site preflight (playbooks/preflight.yml, the
first play of site.yml): each run fails, names the problem, and changes no host.

The hosts of the test inventory are this machine under several names (connection local, an
address each), so the preflight sees real facts; a good inventory passes first (the control),
then every case breaks one thing. Facts are gathered once and cached for the other runs.
"""
import copy
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "preflight.yml"

SECRETS = {
    "llmops_postgresql_password": "pg-Test-7d3Kq9Lm2Xw5Rt8Z",
    "postgresql_replication_password": "rep-Test-4Hs8Vn1Qz6Bw3Jy",
    "llmops_redis_password": "redis-Test-9Pk2Wd5Xc7Mf4Lt",
    "redis_admin_password": "admin-Test-3Gz8Nr6Tb1Vq5Hm",
    "langfuse_salt": "salt-Test-Qw8Er5Ty2Ui9Op6As3Df1Gh4Jk7Lz",
    "langfuse_nextauth_secret": "nextauth-Test-Zx4Cv7Bn2Mq9Wl6Er3Tp8Yu5Io",
    "langfuse_encryption_key": "3f9c1e7a5b2d8f4061c9e3a7b5d2f8e4a1c6b9d3e7f2a5c8b4d1e6f9a3c7b2e5",
    "llmops_clickhouse_password": "ch-Test-6Yt3Re8Wq1Az5Sx",
    "llmops_s3_access_key": "s3TestAccessKey01",
    "llmops_s3_secret_key": "s3-Test-Secret-2Mk7Nj4Bh9Vg",
    "backup_s3_access_key": "backupTestAccess01",
    "backup_s3_secret_key": "backup-Test-Secret-8Rt3Yu6",
    "backup_logical_passphrase": "dump-Test-Passphrase-4Kd9Lm2Q",
    "backup_pgbackrest_cipher_passphrase": "pgbr-Test-Passphrase-7Hx2Vb5N",
}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# external ClickHouse servers for the version gate: the ClickHouse stand-in's HTTP handler, run
# in this process, one answering SELECT version() with a release older than Langfuse v4 needs
CH_OLD_PORT, CH_NEW_PORT, CH_CLOSED_PORT = _free_port(), _free_port(), _free_port()
CH_USER, CH_PASSWORD = "langfuse", "ch-Ext-Test-4Rt8Yu2Io6Pq"
EXTERNAL_CH = {"langfuse_clickhouse_mode": "external", "langfuse_clickhouse_user": CH_USER,
               "llmops_clickhouse_password": CH_PASSWORD,
               "langfuse_clickhouse_migration_url": "clickhouse://127.0.0.1:9000"}


def external_ch(port, **extra):
    return {**EXTERNAL_CH, "langfuse_clickhouse_url": f"http://127.0.0.1:{port}", **extra}


# Fluent Bit's apt repository: an in-process HTTP server with a test signing key (made with gpg for
# tests/unit/test_fluent_bit.py) and an index, and a closed port for an unreachable repository
FB_REPO_PORT, FB_CLOSED_PORT = _free_port(), _free_port()
FB_TEST_KEY = (ROOT / "tests" / "unit" / "data" / "openpgp-test-rsa.asc").read_text()
FB_TEST_FINGERPRINT = "E95F 256E 9010 CBB1 06C6  9CDF 4BC9 C0D9 3F6D 7CC2"
FB_ES_PASSWORD = "fb-Es-Test-Secret-5Tg8Hj"
FB_OUTPUT = {"name": "central", "type": "elasticsearch", "options": {"host": "es.test.internal", "port": 9200},
             "secrets": {"http_passwd": FB_ES_PASSWORD}}


def fluent_bit(port, outputs=None, **extra):
    return {"fluent_bit_enabled": True, "fluent_bit_repo_url": f"http://127.0.0.1:{port}/debian",
            "fluent_bit_repo_key_url": f"http://127.0.0.1:{port}/fluentbit.key", "fluent_bit_repo_probe_timeout": 5,
            "fluent_bit_outputs": [FB_OUTPUT] if outputs is None else outputs, **extra}


GOOD = {
    "all": {
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "nginx_server_name": "langfuse.test.internal",
            "backup_s3_endpoint": "https://backup.test.internal:9000",
            "backup_s3_bucket": "langfuse-backups",
            **SECRETS,
        },
        "children": {
            "langfuse_lb": {"hosts": {"lb1": {"llmops_private_address": "10.9.0.10"}}},
            "langfuse_app": {"hosts": {"app1": {"llmops_private_address": "10.9.0.11"},
                                       "app2": {"llmops_private_address": "10.9.0.12"}}},
            "postgres_primary": {"hosts": {"pg1": {"llmops_private_address": "10.9.0.21"}}},
            "postgres_replica": {"hosts": {"pg2": {"llmops_private_address": "10.9.0.22"}}},
            "redis": {"hosts": {"redis1": {"llmops_private_address": "10.9.0.31"}}},
        },
    }
}


# the cases that need no second app host or replica run against a smaller copy (CI time: the
# preflight's cost grows with the hosts it checks); the good inventory's control covers both
SMALL = copy.deepcopy(GOOD)
del SMALL["all"]["children"]["langfuse_app"]["hosts"]["app2"]
del SMALL["all"]["children"]["postgres_replica"]
NEEDS_EVERY_HOST = {"drain-every-app-host", "wal-level-minimal"}


def with_groups(**groups):
    """A copy of the good inventory with some groups replaced ({group: {host: vars}})."""
    inventory = copy.deepcopy(GOOD)
    for group, hosts in groups.items():
        inventory["all"]["children"][group] = {"hosts": hosts}
    return inventory


def small_with(**groups):
    """A copy of the small inventory with some groups replaced ({group: {host: vars}})."""
    inventory = copy.deepcopy(SMALL)
    for group, hosts in groups.items():
        inventory["all"]["children"][group] = {"hosts": hosts}
    return inventory


def host_vars(group, host, **variables):
    inventory = copy.deepcopy(GOOD)
    inventory["all"]["children"][group]["hosts"][host].update(variables)
    return inventory


# the exporters' credentials, which every inventory with monitoring hosts needs
MONITORING_SECRETS = {"llmops_redis_monitoring_password": "mon-Test-3Fd8Kq2Wz6Lp",
                      "llmops_postgresql_monitoring_password": "pgmon-Test-7Vc4Nb9Xs1Hj"}


def monitored(**extra):
    """The monitoring secrets plus `extra`, and the small inventory with one monitoring host."""
    return {**MONITORING_SECRETS, **extra}, small_with(monitoring={"mon1": {"llmops_private_address": "10.9.0.41"}})


# (id, extra vars, inventory or None for the good one, what the message must say)
CASES = [
    ("backup-without-target", {"backup_s3_endpoint": ""}, None, "upload to S3: set backup_s3_endpoint"),
    ("backup-passphrase-short", {"backup_logical_passphrase": "short-passphrase"}, None,
     "Set backup_logical_passphrase and backup_pgbackrest_cipher_passphrase to at least 20 characters"),
    ("pgbackrest-over-plain-http", {"backup_s3_endpoint": "http://backup.test.internal:9000"}, None,
     "speaks S3 over TLS only"),
    ("node-heap-above-limit", {"langfuse_web_node_heap_mb": 5000}, None,
     "the Node heap must stay below the container's memory limit"),
    ("cpu-limit-above-host", {"langfuse_worker_cpus": 512}, None, "must not exceed the host's"),
    ("memory-limit-format", {"langfuse_worker_mem_limit": "4 GiB"}, None,
     "langfuse_web_mem_limit and langfuse_worker_mem_limit must be sizes"),
    ("retention-two-days", {"langfuse_init_project_retention_days": 2}, None, "Langfuse accepts 3 days"),
    ("external-clickhouse-too-old", external_ch(CH_OLD_PORT), None,
     "runs 25.3.2.1; Langfuse v4 needs ClickHouse 25.12 or newer"),
    ("external-clickhouse-unreachable", external_ch(CH_CLOSED_PORT), None,
     f"The external ClickHouse at http://127.0.0.1:{CH_CLOSED_PORT} cannot be reached"),
    ("external-clickhouse-wrong-password", external_ch(CH_NEW_PORT, llmops_clickhouse_password="wrong-Password-0123456"),
     None, "refused SELECT version() as user langfuse"),
    ("floating-release", {"langfuse_version": "latest"}, None,
     "langfuse_version latest is not an exact release"),
    ("floating-image", {"langfuse_web_image": "docker.langfuse.com/langfuse/langfuse:4"}, None,
     "These images have no fixed tag or digest: docker.langfuse.com/langfuse/langfuse:4"),
    ("short-nextauth-secret", {"langfuse_nextauth_secret": "short"}, None,
     "langfuse_nextauth_secret is shorter than 32 characters"),
    ("short-salt", {"langfuse_salt": "salt-0123456789"}, None, "langfuse_salt is shorter than 32 characters"),
    ("encryption-key-16", {"langfuse_encryption_key": "0123456789abcdef"}, None,
     "langfuse_encryption_key must be exactly 64 hexadecimal characters"),
    ("redis-password-5", {"llmops_redis_password": "abcde"}, None, "redis_langfuse_password must be set"),
    ("postgresql-password-short", {"llmops_postgresql_password": "short-pw-1"}, None,
     "postgresql_langfuse_password (the Langfuse user) is shorter than 16 characters"),
    ("clickhouse-password-short", {"langfuse_clickhouse_password": "ch-short"}, None,
     "langfuse_clickhouse_password is shorter than 16 characters"),
    ("s3-secret-short", {"langfuse_s3_secret_key": "s3-short"}, None,
     "langfuse_s3_secret_key is shorter than 16 characters"),
    ("s3-access-key-format", {"langfuse_s3_access_key": "bad key/with spaces"}, None,
     "langfuse_s3_access_key must be 3 to 128 characters"),
    ("eviction-policy", {"redis_maxmemory_policy": "allkeys-lru"}, None, "noeviction"),
    ("two-primaries", {}, with_groups(postgres_primary={"pg1": {"llmops_private_address": "10.9.0.21"},
                                                        "pg3": {"llmops_private_address": "10.9.0.23"}}),
     "exactly one host in postgres_primary (it has 2)"),
    ("replica-major-version", {}, host_vars("postgres_replica", "pg2", postgresql_version=16,
                                            postgresql_apt_source="pgdg"),
     "pg2 would run PostgreSQL 16, its primary pg1 runs 15"),
    ("no-database-host", {}, with_groups(postgres_primary={}, postgres_replica={}),
     "langfuse_database_host is empty: the inventory has no postgres_primary host"),
    ("malformed-rate-limit", {"nginx_rate_limit_zones": [{"name": "per_client", "key": "$binary_remote_addr",
                                                          "rate": "fast", "size": "10m"}]}, None, "rate"),
    ("certificate-without-key", {"nginx_tls_source": "files", "nginx_tls_cert_src": "/etc/hostname",
                                 "nginx_tls_key_src": ""}, None, "nginx_tls_key_src"),
    ("ssh-port-out-of-range", {"common_firewall_ssh_port": 70000}, None, "common_firewall_ssh_port is not 1-65535"),
    ("unknown-group", {"common_firewall_rules": [{"name": "x", "port": 9100, "sources": ["no_such_group"]}]}, None,
     "source 'no_such_group' is neither an IP address/CIDR nor an inventory group or host"),
    ("firewall-protocol", {"common_firewall_rules": [{"name": "x", "port": 9100, "proto": "sctp",
                                                      "sources": ["10.0.0.0/8"]}]}, None,
     "value of proto must be one of: tcp, udp, got: sctp"),
    ("firewall-port-range", {"common_firewall_rules": [{"name": "x", "port": 70000, "sources": ["10.0.0.0/8"]}]},
     None, "port 70000 is not a port number"),
    ("sysctl-name", {"common_sysctls": {"not a key": 1}}, None, "common_sysctls has keys that are not kernel"),
    ("same-web-and-worker-port", {"langfuse_worker_port": 3000}, None, "their ports must differ"),
    ("bucket-name", {"langfuse_s3_bucket": "Bad_Bucket"}, None, "langfuse_s3_bucket must be a valid bucket name"),
    ("public-url", {"llmops_public_url": "langfuse.example.com"}, None, "is not an http(s) URL"),
    ("init-user-without-password", {"langfuse_init_org_id": "org", "langfuse_init_user_email": "a@b.c"}, None,
     "Headless initialisation is incomplete"),
    ("major-version-mismatch", {"langfuse_major_version": 3}, None, "does not belong to langfuse_major_version 3"),
    ("sentinel-with-two-hosts", {"llmops_redis_ha": "sentinel", "llmops_redis_sentinel_password": "sen-Test-7Gh2Jk5Lq8Wz",
                                 "redis_replication_password": "rep-Test-5Vb8Nm2Qw4Er",
                                 "redis_sentinel_auth_password": "sau-Test-9Xc3Vb6Nm1Kl"},
     with_groups(redis={"redis1": {"llmops_private_address": "10.9.0.31"},
                        "redis2": {"llmops_private_address": "10.9.0.32"}}), "three"),
    ("pgbouncer-port", {"llmops_pgbouncer_enabled": True, "postgresql_pgbouncer_port": 5432}, None,
     "postgresql_pgbouncer_port must differ from postgresql_port"),
    ("drain-every-app-host", {"nginx_drained_hosts": ["app1", "app2"]}, None, "leave at least one of them in service"),
    ("clickhouse-host-not-an-app-host", {"langfuse_clickhouse_host": "pg1"}, None,
     "langfuse_clickhouse_host (pg1) must be a host of the langfuse_app group"),
    ("wal-level-minimal", {"postgresql_parameters": {"wal_level": "minimal"}}, None,
     "Streaming replication needs wal_level replica or logical"),
    ("redis-exporter-queue-name",
     {**MONITORING_SECRETS, "redis_exporter_bullmq_queues": ["ingestion-queue", "trace upsert"]},
     with_groups(monitoring={"mon1": {"llmops_private_address": "10.9.0.41"}}),
     "the names in redis_exporter_bullmq_queues may hold letters, digits and _.- only"),
    ("postgres-exporter-without-loopback", MONITORING_SECRETS,
     small_with(monitoring={"mon1": {"llmops_private_address": "10.9.0.41"}},
                postgres_primary={"pg1": {"llmops_private_address": "10.9.0.21",
                                          "postgresql_listen_addresses": ["10.9.0.21"]}}),
     "postgres_exporter reads PostgreSQL over 127.0.0.1, and postgresql_listen_addresses (10.9.0.21) has "
     "neither localhost nor 127.0.0.1"),
    ("blackbox-exporter-timeout", *monitored(blackbox_exporter_timeout="5 seconds"),
     "blackbox_exporter_timeout a duration such as 5s"),
    ("nginx-exporter-mtail-port-flag", *monitored(nginx_exporter_mtail_extra_args=["--port=4000"]),
     "mtail's --address, --port, --logs, --progs"),
    ("grafana-without-admin-password", *monitored(grafana_enabled=True),
     "grafana_admin_password set, 12 characters or more"),
    ("monitoring-probe-url-plain-http", *monitored(monitoring_probe_public_url="http://langfuse.example.com"),
     "monitoring_probe_public_url empty or an https:// URL"),
    ("fluent-bit-output-type", fluent_bit(FB_REPO_PORT, [{**FB_OUTPUT, "type": "splunk"}],
                                          fluent_bit_repo_key_fingerprint=FB_TEST_FINGERPRINT), None,
     "output 'central': type 'splunk' is not one of elasticsearch, forward, loki, opensearch, s3"),
    ("fluent-bit-output-without-host", fluent_bit(FB_REPO_PORT, [{**FB_OUTPUT, "options": {"port": 9200}}],
                                                  fluent_bit_repo_key_fingerprint=FB_TEST_FINGERPRINT), None,
     "output 'central' (elasticsearch): option host or cloud_id is required"),
    ("fluent-bit-password-in-options", fluent_bit(FB_REPO_PORT, [{**FB_OUTPUT, "secrets": {}, "options": {
        "host": "es.test.internal", "http_passwd": FB_ES_PASSWORD}}], fluent_bit_repo_key_fingerprint=FB_TEST_FINGERPRINT),
     None, "output 'central': option http_passwd is a credential: give it in secrets"),
    ("fluent-bit-no-output", fluent_bit(FB_REPO_PORT, [], fluent_bit_repo_key_fingerprint=FB_TEST_FINGERPRINT), None,
     "fluent_bit_outputs is empty"),
    ("fluent-bit-repository-unreachable", fluent_bit(FB_CLOSED_PORT), None,
     f"Fluent Bit's apt repository cannot be reached from lb1: GET http://127.0.0.1:{FB_CLOSED_PORT}/fluentbit.key"),
    ("fluent-bit-wrong-key", fluent_bit(FB_REPO_PORT), None,
     "has the fingerprint E95F256E9010CBB106C69CDF4BC9C0D93F6D7CC2, not fluent_bit_repo_key_fingerprint "
     "(C3C0A28534B9293EAF51FABD9F9DDC083888C1CD)"),
]


@pytest.fixture(scope="module")
def clickhouse_servers():
    """Two external ClickHouse stand-ins (25.3.2.1 and 26.4.1.1) with the user langfuse."""
    servers = []
    for port, version in ((CH_OLD_PORT, "25.3.2.1"), (CH_NEW_PORT, "26.4.1.1")):
        spec = importlib.util.spec_from_file_location(
            f"clickhouse_standin_{port}", ROOT / "tests" / "standins" / "clickhouse" / "clickhouse_standin.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.VERSION = version
        store = module.Store(Path(f"/tmp/llmops-ch-standin-{port}.json"), "default")
        users = {CH_USER: {"password": CH_PASSWORD, "local_only": False}}
        handler = type("Bound", (module.Handler,), {"store": store, "users": users, "env": {}})
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield
    for server in servers:
        server.shutdown()


@pytest.fixture(scope="module")
def fluent_bit_repository():
    """Fluent Bit's apt repository as the probe sees it: the signing key and an index."""
    from http.server import BaseHTTPRequestHandler

    class Repository(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path == "/fluentbit.key":
                body = FB_TEST_KEY.encode()
            elif re.fullmatch(r"/debian/([a-z]+)/dists/\1/InRelease", self.path):
                body = b"Origin: test\nSuite: test\n"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", FB_REPO_PORT), Repository)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield
    server.shutdown()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    top = tmp_path_factory.mktemp("preflight")
    (top / "ansible_collections" / "llmops").mkdir(parents=True)
    (top / "ansible_collections" / "llmops" / "langfuse").symlink_to(ROOT, target_is_directory=True)
    return top


def preflight(workdir, name, inventory, extra):
    case = workdir / name
    case.mkdir(exist_ok=True)
    (case / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (case / "extra.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(workdir), ANSIBLE_GATHERING="smart",
               ANSIBLE_CACHE_PLUGIN="ansible.builtin.jsonfile", ANSIBLE_CACHE_PLUGIN_CONNECTION=str(workdir / "facts"),
               ANSIBLE_CACHE_PLUGIN_TIMEOUT="3600", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_HOST_PATTERN_MISMATCH="ignore")
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    res = subprocess.run(["ansible-playbook", "-i", str(case / "hosts.yml"), str(PLAYBOOK), "-e", f"@{case / 'extra.json'}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=case, check=False)
    return res.returncode, res.stdout


def changed_counts(output):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)}


def flat(text):
    return " ".join(text.split())


@pytest.fixture(scope="module")
def good_run(workdir):
    """The control: the good inventory passes (and fills the fact cache for the cases), and so
    does its smaller copy."""
    full = preflight(workdir, "good", GOOD, {})
    small = preflight(workdir, "good-small", SMALL, {})
    return (max(full[0], small[0]), full[1] + small[1]), full, small


def test_the_good_inventory_passes_and_changes_nothing(good_run):
    _both, full, small = good_run
    for (code, out), names in ((full, {"lb1", "app1", "app2", "pg1", "pg2", "redis1"}),
                               (small, {"lb1", "app1", "pg1", "redis1"})):
        assert code == 0, out[-3000:]
        counts = changed_counts(out)
        assert set(counts) == names and not any(counts.values()), counts


def test_there_are_at_least_25_bad_inputs():
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


def test_a_current_external_clickhouse_passes(workdir, good_run, clickhouse_servers):
    assert good_run[0][0] == 0, "the control failed"
    code, out = preflight(workdir, "external-clickhouse-current", SMALL, external_ch(CH_NEW_PORT))
    assert code == 0, out[-3000:]
    assert CH_PASSWORD not in out


def test_fluent_bit_with_a_reachable_repository_and_its_key_passes(workdir, good_run, fluent_bit_repository):
    assert good_run[0][0] == 0, "the control failed"
    code, out = preflight(workdir, "fluent-bit-good", SMALL,
                          fluent_bit(FB_REPO_PORT, fluent_bit_repo_key_fingerprint=FB_TEST_FINGERPRINT))
    assert code == 0, out[-3000:]
    assert "Check that the repository can be reached from this host" in out
    assert FB_ES_PASSWORD not in out
    assert not any(changed_counts(out).values()), changed_counts(out)


@pytest.fixture(scope="module")
def bad_runs(workdir, good_run, clickhouse_servers, fluent_bit_repository):
    assert good_run[0][0] == 0, "the control failed: see test_the_good_inventory_passes_and_changes_nothing"
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(preflight, workdir, name,
                                     inventory or (GOOD if name in NEEDS_EVERY_HOST else SMALL), extra)
                   for name, extra, inventory, _expected in CASES}
        return {name: fut.result() for name, fut in futures.items()}


@pytest.mark.parametrize("name, extra, inventory, expected", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_refused_before_any_change(bad_runs, name, extra, inventory, expected):
    code, out = bad_runs[name]
    assert code != 0, f"{name} passed the preflight:\n{out[-2000:]}"
    assert expected in flat(out), f"{name}: the message does not say '{expected}':\n{out[-3000:]}"
    assert not any(changed_counts(out).values()), changed_counts(out)
