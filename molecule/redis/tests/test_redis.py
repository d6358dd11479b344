"""Behaviour of the redis role on one Redis host (redis-server1, Debian 12, redis-server, TLS
listener), seen from a Langfuse app host (redis-app) and from a host outside the allowed groups
(redis-outside).

The tests at the end re-run the scenario's playbook (those about the server alone with --limit
redis, as an operator would): some change the users or break a setting on
purpose (and check the role refuses or rolls back), the verbose run afterwards converges
everything back, then the dry run checks nothing is left to change. Keep that order."""
import json
import re
import shlex
import time

import pytest
from conftest import address, can_connect, recap, run_playbook

SERVER, APP, OUTSIDE = "redis-server1", "redis-app", "redis-outside"
SECRETS = ("redis_langfuse_password", "redis_admin_password", "redis_monitoring_password")


@pytest.fixture(scope="module")
def inv(hosts):
    """The server's inventory variables (the test passwords come from molecule.yml)."""
    return hosts[SERVER].ansible.get_variables()


@pytest.fixture(scope="module")
def target(hosts):
    return address(hosts[SERVER])


def cli(src, dst, *args, user=None, password=None, port=6379, tls_ca=None):
    """redis-cli on host src against dst:port; returns stdout and stderr together."""
    env = f"REDISCLI_AUTH={shlex.quote(password)} " if password is not None else ""
    auth = f"--user {shlex.quote(user)} " if user else ""
    tls = f"--tls --cacert {shlex.quote(tls_ca)} " if tls_ca else ""
    cmd = (f"{env}timeout 10 redis-cli --no-auth-warning {tls}{auth}-h {dst} -p {port} "
           + " ".join(shlex.quote(str(a)) for a in args))
    result = src.run(cmd)
    return (result.stdout + result.stderr).strip()


def langfuse(hosts, inv, target, *args, **kw):
    return cli(hosts[APP], target, *args, user="langfuse", password=inv["redis_langfuse_password"], **kw)


def admin(hosts, inv, *args):
    return cli(hosts[SERVER], "127.0.0.1", *args, user="admin", password=inv["redis_admin_password"])


def server_pid(host):
    return host.check_output("systemctl show --property MainPID --value redis-server")


def wait_for_pong(hosts, inv):
    for _attempt in range(60):
        if admin(hosts, inv, "PING") == "PONG":
            return
        time.sleep(1)
    raise AssertionError("redis-server did not answer after its restart")


def test_unauthenticated_client_is_refused(hosts, target):
    assert "NOAUTH" in cli(hosts[APP], target, "PING")
    assert "NOAUTH" in cli(hosts[APP], target, "GET", "anything")


def test_wrong_password_is_refused(hosts, target):
    out = cli(hosts[APP], target, "PING", user="langfuse", password="not-the-password-0000")
    assert "WRONGPASS" in out
    assert "PONG" not in out


def test_default_user_is_disabled(hosts, inv, target):
    # the default user cannot log in, not even with the Langfuse password
    assert "WRONGPASS" in cli(hosts[APP], target, "PING", password=inv["redis_langfuse_password"])
    assert "user default off" in admin(hosts, inv, "ACL", "LIST")


def test_langfuse_user_runs_what_langfuse_needs(hosts, inv, target):
    assert langfuse(hosts, inv, target, "SET", "test:key", "v1") == "OK"
    assert langfuse(hosts, inv, target, "GET", "test:key") == "v1"
    assert langfuse(hosts, inv, target, "EVAL", "return redis.call('GET', KEYS[1])", 1, "test:key") == "v1"
    assert langfuse(hosts, inv, target, "PUBLISH", "test:channel", "x") == "0"
    assert "redis_version" in langfuse(hosts, inv, target, "INFO", "server")
    assert langfuse(hosts, inv, target, "CLIENT", "SETNAME", "bull:test") == "OK"


@pytest.mark.parametrize("command", [
    ["FLUSHALL"], ["FLUSHDB"], ["SWAPDB", "0", "1"], ["CONFIG", "GET", "maxmemory"],
    ["CONFIG", "SET", "maxmemory", "0"], ["DEBUG", "SLEEP", "0"], ["SHUTDOWN", "NOSAVE"], ["MODULE", "LIST"],
    ["ACL", "LIST"], ["REPLICAOF", "NO", "ONE"], ["MONITOR"], ["BGSAVE"],
])
def test_langfuse_user_is_denied_admin_commands(hosts, inv, target, command):
    # ACL DRYRUN asks the server whether the user may run a command, without running it
    verdict = admin(hosts, inv, "ACL", "DRYRUN", "langfuse", *command)
    assert "has no permissions to run" in verdict, verdict
    if command[0] not in ("SHUTDOWN", "MONITOR", "DEBUG"):  # tried for real where that is harmless
        assert "NOPERM" in langfuse(hosts, inv, target, *command)


def test_eviction_policy_and_memory_limit(hosts, inv, target):
    info = langfuse(hosts, inv, target, "INFO", "memory")
    assert "maxmemory_policy:noeviction" in info
    assert "maxmemory:268435456" in info  # redis_maxmemory: 256mb


def test_monitoring_user_is_read_only(hosts, inv, target):
    def mon(*args):
        return cli(hosts[APP], target, *args, user="monitoring", password=inv["redis_monitoring_password"])
    assert "connected_clients" in mon("INFO", "clients")
    assert "cmd=client|list" in mon("CLIENT", "LIST")
    assert mon("SLOWLOG", "LEN").isdigit()
    # the lengths of BullMQ's keys (redis_exporter's queue metrics), never their contents
    assert mon("LLEN", "bull:ingestion-queue:wait") == "0"
    assert mon("ZCARD", "bull:ingestion-queue:failed") == "0"
    for command in (["GET", "test:key"], ["SET", "test:key", "x"], ["CONFIG", "GET", "masterauth"],
                    ["EVAL", "return 1", 0], ["SLOWLOG", "RESET"], ["CLIENT", "KILL", "ID", "1"],
                    ["LRANGE", "bull:ingestion-queue:wait", "0", "-1"], ["HGETALL", "bull:ingestion-queue:1"],
                    ["LLEN", "other:key"], ["DEL", "bull:ingestion-queue:wait"]):
        assert "NOPERM" in mon(*command), command


def test_aclfile_holds_only_password_hashes(hosts, inv):
    acl = hosts[SERVER].file("/etc/redis/users.acl")
    assert acl.user == "redis" and acl.mode == 0o640
    content = acl.content_string
    for name in SECRETS:
        assert inv[name] not in content
    assert len(re.findall(r" #[0-9a-f]{64} ", content)) == 3


def test_configuration_files(hosts):
    server = hosts[SERVER]
    for path in ("/etc/redis/redis.conf", "/etc/redis/llmops.conf"):
        f = server.file(path)
        assert f.user == "redis" and f.mode == 0o640
        assert "Ansible managed" in f.content_string
    assert "include /etc/redis/llmops.conf" in server.file("/etc/redis/redis.conf").content_string
    # no copies of previous files are left behind by the handlers
    assert not server.run("ls /etc/redis | grep '~$'").stdout


def test_bind_persistence_and_protected_mode(hosts, inv, target):
    def get(name):
        return admin(hosts, inv, "CONFIG", "GET", name).splitlines()[1]
    assert sorted(get("bind").split()) == sorted([target, "127.0.0.1"])
    assert get("protected-mode") == "yes"
    assert get("appendonly") == "yes"
    assert get("appendfsync") == "everysec"
    assert get("save") == "3600 1 300 100 60 10000"
    assert get("maxmemory-policy") == "noeviction"


def test_data_survives_a_restart(hosts, inv, target):
    assert langfuse(hosts, inv, target, "SET", "test:durable", "kept") == "OK"
    hosts[SERVER].check_output("systemctl restart redis-server")
    wait_for_pong(hosts, inv)
    assert langfuse(hosts, inv, target, "GET", "test:durable") == "kept"


def test_only_allowed_hosts_reach_the_ports(hosts, target):
    app, outside = hosts[APP], hosts[OUTSIDE]
    for port in (6379, 6380):
        assert can_connect(app, target, port)
        assert not can_connect(outside, target, port)


def test_tls_listener_with_the_local_ca(hosts, inv, target):
    app = hosts[APP]
    ca = hosts[SERVER].file("/etc/redis/tls/ca.crt").content_string
    app.check_output(f"printf '%s' {shlex.quote(ca)} > /tmp/llmops-redis-ca.crt")
    assert langfuse(hosts, inv, target, "PING", port=6380, tls_ca="/tmp/llmops-redis-ca.crt") == "PONG"
    # the certificate names the host's address, and a client without the CA does not trust it
    assert "PONG" not in langfuse(hosts, inv, target, "PING", port=6380, tls_ca="/etc/ssl/certs/ca-certificates.crt")
    # TLS only on its own port: plain text there gets no answer
    assert "PONG" not in langfuse(hosts, inv, target, "PING", port=6380)
    assert hosts[SERVER].file("/etc/redis/tls/redis.key").mode == 0o640


def test_kernel_settings_skipped_in_containers(hosts):
    server = hosts[SERVER]
    assert not server.file("/etc/sysctl.d/60-llmops-redis.conf").exists
    assert not server.file("/etc/systemd/system/llmops-redis-thp.service").exists


def test_new_users_apply_without_restart(hosts, inv, target):
    """New rules for the Langfuse user, and the default user kept for password-only clients
    (REDIS_AUTH without a user name): applied with ACL LOAD."""
    pid = server_pid(hosts[SERVER])
    assert "NOPERM" not in langfuse(hosts, inv, target, "KEYS", "test:*")
    extra = json.dumps({"redis_langfuse_acl": "~* &* +@all -flushall -flushdb -config -keys",
                        "redis_default_user_enabled": True})
    run = run_playbook("converge.yml", "--limit", "redis", "-e", extra)
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run.stdout)[SERVER]["changed"] >= 1
    assert "NOPERM" in langfuse(hosts, inv, target, "KEYS", "test:*")
    # a client that sends only the password logs in as default, with the Langfuse user's rules
    assert cli(hosts[APP], target, "PING", password=inv["redis_langfuse_password"]) == "PONG"
    assert "user default on" in admin(hosts, inv, "ACL", "LIST")
    assert "NOPERM" in cli(hosts[APP], target, "FLUSHALL", password=inv["redis_langfuse_password"])
    assert server_pid(hosts[SERVER]) == pid  # ACL LOAD, no restart


def test_refused_users_are_rolled_back(hosts, inv, target):
    acl = hosts[SERVER].file("/etc/redis/users.acl").content_string
    pid = server_pid(hosts[SERVER])
    run = run_playbook("converge.yml", "--limit", "redis",
                       "-e", json.dumps({"redis_langfuse_acl": "~* +@no-such-category"}))
    assert run.returncode != 0
    assert "refused the new users file (ACL LOAD)" in run.stdout, run.stdout[-3000:]
    assert hosts[SERVER].file("/etc/redis/users.acl").content_string == acl
    assert server_pid(hosts[SERVER]) == pid
    assert langfuse(hosts, inv, target, "PING") == "PONG"


def test_broken_setting_is_rolled_back(hosts, inv, target):
    settings = hosts[SERVER].file("/etc/redis/llmops.conf").content_string
    assert langfuse(hosts, inv, target, "SET", "test:survivor", "yes") == "OK"
    run = run_playbook("converge.yml", "--limit", "redis",
                       "-e", json.dumps({"redis_config_extra": {"hz": "not-a-number"}}))
    assert run.returncode != 0
    assert "did not answer PING" in run.stdout, run.stdout[-3000:]
    assert "The previous configuration is back and the server answers again" in run.stdout
    assert hosts[SERVER].file("/etc/redis/llmops.conf").content_string == settings
    assert langfuse(hosts, inv, target, "GET", "test:survivor") == "yes"
    assert not hosts[SERVER].run("ls /etc/redis | grep '~$'").stdout


def test_new_admin_password_restarts_instead(hosts, inv, target):
    """ACL LOAD needs the admin user, which cannot log in with a password the server does not
    know yet: a new admin password makes the role restart the server instead."""
    pid = server_pid(hosts[SERVER])
    new = "test-adm-rotated-8Ks2Vd6Qm4Zp"
    run = run_playbook("converge.yml", "--limit", "redis", "-e", json.dumps({"redis_admin_password": new}))
    assert run.returncode == 0, run.stdout[-3000:]
    assert server_pid(hosts[SERVER]) != pid
    assert cli(hosts[SERVER], "127.0.0.1", "PING", user="admin", password=new) == "PONG"
    assert "WRONGPASS" in admin(hosts, inv, "PING")
    assert new not in run.stdout


def test_verbose_diff_run_prints_no_secret(hosts, inv):
    # also the run that puts the scenario's passwords and users back after the tests above
    run = run_playbook("converge.yml", "-v", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    assert admin(hosts, inv, "PING") == "PONG"
    for name in SECRETS:
        assert inv[name] not in run.stdout, f"{name} printed"
    acl = hosts[SERVER].file("/etc/redis/users.acl").content_string
    for digest in re.findall(r"#([0-9a-f]{64})", acl):
        assert digest not in run.stdout


def test_check_mode_changes_nothing_and_reports_the_skips():
    run = run_playbook("converge.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    assert all(c["changed"] == 0 for c in recap(run.stdout).values()), run.stdout[-3000:]
    assert "Skipping 1 kernel settings of redis" in run.stdout
    assert "Skipping transparent huge pages" in run.stdout


def test_preflight_refuses_an_eviction_policy(hosts):
    before = hosts[SERVER].file("/etc/redis/llmops.conf").content_string
    run = run_playbook("converge.yml", "-e", "redis_maxmemory_policy=allkeys-lru")
    assert run.returncode != 0
    assert "redis_maxmemory_policy is 'allkeys-lru', but Langfuse needs 'noeviction'" in run.stdout, run.stdout[-3000:]
    assert "BullMQ" in run.stdout
    counters = recap(run.stdout)
    assert counters and all(c["changed"] == 0 for c in counters.values()), counters
    assert counters[SERVER]["failed"] == 1
    assert hosts[SERVER].file("/etc/redis/llmops.conf").content_string == before
