"""Behaviour of the redis role with redis_ha=sentinel: three Valkey hosts (redis-sentinel1 and 2 on
Debian 13 with valkey 8.1, redis-sentinel3 on Debian 12 with valkey 8.0 from bookworm-backports),
seen from a Langfuse app host (redis-sentinel-app) that finds the master through the Sentinels.

Order matters at the end of the module: the failover test moves the master away from
redis-sentinel1 and checks that re-running the role keeps the new topology; the reconcile test
changes settings so the role rewrites every file with that topology; the verbose run converges
back to the scenario's settings; the dry run then finds nothing to change."""
import json
import re
import shlex
import time

import pytest
from conftest import address, can_connect, recap, run_playbook

NODES = ("redis-sentinel1", "redis-sentinel2", "redis-sentinel3")
APP = "redis-sentinel-app"
MASTER_NAME = "langfuse"
SECRETS = ("redis_langfuse_password", "redis_admin_password", "redis_replication_password",
           "redis_sentinel_password", "redis_sentinel_auth_password")


@pytest.fixture(scope="module")
def inv(hosts):
    return hosts[NODES[0]].ansible.get_variables()


@pytest.fixture(scope="module")
def addrs(hosts):
    return {name: address(hosts[name]) for name in NODES}


def cli(src, dst, port, *args, user=None, password=None, binary="redis-cli"):
    """redis-cli (valkey-cli on the Valkey hosts) on host src against dst:port; returns stdout
    and stderr together."""
    env = f"REDISCLI_AUTH={shlex.quote(password)} " if password is not None else ""
    auth = f"--user {shlex.quote(user)} " if user else ""
    cmd = (f"{env}timeout 10 {binary} --no-auth-warning {auth}-h {dst} -p {port} "
           + " ".join(shlex.quote(str(a)) for a in args))
    result = src.run(cmd)
    return (result.stdout + result.stderr).strip()


def sentinel(hosts, inv, dst, *args):
    return cli(hosts[APP], dst, 26379, *args, password=inv["redis_sentinel_password"])


def langfuse(hosts, inv, dst, *args):
    return cli(hosts[APP], dst, 6379, *args, user="langfuse", password=inv["redis_langfuse_password"])


def admin(hosts, inv, name, *args):
    return cli(hosts[name], "127.0.0.1", 6379, *args, user="admin", password=inv["redis_admin_password"],
               binary="valkey-cli")


def reported_masters(hosts, inv, addrs):
    """The master address each Sentinel reports (asked from the app host)."""
    return {name: sentinel(hosts, inv, addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME).split("\n")[0]
            for name, addr in addrs.items()}


def current_master(hosts, inv, addrs):
    masters = set(reported_masters(hosts, inv, addrs).values())
    assert len(masters) == 1, masters
    master = masters.pop()
    return [n for n, a in addrs.items() if a == master][0]


def wait_until(check, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return time.monotonic() - (deadline - seconds)
        time.sleep(1)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def replication(hosts, inv, name):
    info = admin(hosts, inv, name, "INFO", "replication")
    return dict(line.split(":", 1) for line in info.splitlines() if ":" in line)


def healthy(hosts, inv, addrs, master):
    """master is the master of two replicas whose links are up, and every Sentinel agrees."""
    if set(reported_masters(hosts, inv, addrs).values()) != {addrs[master]}:
        return False
    if replication(hosts, inv, master).get("connected_slaves") != "2":
        return False
    return all(replication(hosts, inv, n).get("master_link_status") == "up"
               and replication(hosts, inv, n).get("master_host") == addrs[master]
               for n in NODES if n != master)


def test_every_sentinel_reports_the_first_host_as_master(hosts, inv, addrs):
    assert set(reported_masters(hosts, inv, addrs).values()) == {addrs[NODES[0]]}
    for addr in addrs.values():
        state = sentinel(hosts, inv, addr, "SENTINEL", "MASTER", MASTER_NAME).split("\n")
        fields = dict(zip(state[::2], state[1::2]))
        assert fields["num-slaves"] == "2" and fields["num-other-sentinels"] == "2", fields
        assert fields["quorum"] == "2"
        assert sentinel(hosts, inv, addr, "SENTINEL", "CKQUORUM", MASTER_NAME).startswith("OK 3 usable Sentinels")


def test_sentinels_require_their_password(hosts, inv, addrs):
    addr = addrs[NODES[1]]
    assert "NOAUTH" in cli(hosts[APP], addr, 26379, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
    out = cli(hosts[APP], addr, 26379, "SENTINEL", "MASTERS", password="not-the-password-0000")
    assert "WRONGPASS" in out or "invalid password" in out
    assert "num-slaves" not in out


def test_sentinel_names_the_tls_listener_and_replication_runs_over_tls(hosts, inv, addrs):
    """What Langfuse does with REDIS_SENTINEL_ENABLED and REDIS_TLS_ENABLED (ioredis): ask a Sentinel
    for the master, then connect there over TLS with the CA. Sentinel must name the TLS port, and
    the replicas' links to the master run over it too."""
    master = current_master(hosts, inv, addrs)
    reply = sentinel(hosts, inv, addrs[NODES[1]], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME).split("\n")
    assert reply == [addrs[master], "6380"], reply
    ca = hosts[NODES[0]].file("/etc/valkey/tls/ca.crt").content_string
    hosts[APP].check_output("mkdir -p /tmp/llmops-redis-ca && printf %s %s > /tmp/llmops-redis-ca/ca.crt",
                            "%s", ca)
    out = cli(hosts[APP], reply[0], int(reply[1]), "--tls", "--cacert", "/tmp/llmops-redis-ca/ca.crt", "ROLE",
              user="langfuse", password=inv["redis_langfuse_password"])
    assert out.splitlines()[0] == "master", out
    # a TLS client that cannot verify the certificate is refused
    out = cli(hosts[APP], reply[0], int(reply[1]), "--tls", "--cacert", "/etc/ssl/certs/ca-certificates.crt", "PING",
              user="langfuse", password=inv["redis_langfuse_password"])
    assert "PONG" not in out, out
    for name in NODES:
        if name != master:
            info = replication(hosts, inv, name)
            assert (info["master_port"], info["master_link_status"]) == ("6380", "up"), info
    # the Sentinels talk to each other over TLS on 26380, open to the redis hosts only
    assert sentinel(hosts, inv, addrs[master], "SENTINEL", "CKQUORUM", MASTER_NAME).startswith("OK 3 usable")
    assert can_connect(hosts[NODES[1]], addrs[NODES[0]], 26380)
    assert not can_connect(hosts[APP], addrs[NODES[0]], 26380)


def test_replicas_receive_writes_and_refuse_their_own(hosts, inv, addrs):
    master = NODES[0]
    assert replication(hosts, inv, master)["role"] == "master"
    assert langfuse(hosts, inv, addrs[master], "SET", "test:replicated", "r1") == "OK"
    for name in NODES[1:]:
        assert replication(hosts, inv, name)["role"] == "slave"
        wait_until(lambda n=name: langfuse(hosts, inv, addrs[n], "GET", "test:replicated") == "r1", 15,
                   f"replication to {name}")
        assert "READONLY" in langfuse(hosts, inv, addrs[name], "SET", "test:replicated", "x")


@pytest.mark.parametrize("user, command, allowed", [
    ("replication", ["PSYNC", "?", "-1"], True),
    ("replication", ["GET", "test:replicated"], False),
    ("replication", ["CONFIG", "GET", "masterauth"], False),
    ("sentinel", ["CONFIG", "REWRITE"], True),
    ("sentinel", ["REPLICAOF", "NO", "ONE"], True),
    ("sentinel", ["GET", "test:replicated"], False),
    ("sentinel", ["FLUSHALL"], False),
    ("sentinel", ["CONFIG", "SET", "maxmemory", "0"], False),
])
def test_replication_and_sentinel_users_are_limited(hosts, inv, user, command, allowed):
    verdict = admin(hosts, inv, NODES[0], "ACL", "DRYRUN", user, *command)
    assert (verdict == "OK") == allowed, verdict


def test_memory_limit_is_half_of_the_ram(hosts, inv):
    for name in NODES:
        kib = int(re.search(r"MemTotal:\s+(\d+)", hosts[name].file("/proc/meminfo").content_string).group(1))
        maxmemory = admin(hosts, inv, name, "CONFIG", "GET", "maxmemory").split("\n")[1]
        assert int(maxmemory) == int(kib * 0.5 / 1024) * 1024 * 1024
        assert admin(hosts, inv, name, "CONFIG", "GET", "maxmemory-policy").split("\n")[1] == "noeviction"


def test_ports_open_to_the_app_host(hosts, addrs):
    for addr in addrs.values():
        assert can_connect(hosts[APP], addr, 6379)
        assert can_connect(hosts[APP], addr, 26379)


def test_valkey_versions(hosts):
    assert "v=8.1" in hosts[NODES[0]].check_output("valkey-server --version")
    debian12 = hosts[NODES[2]]
    assert "v=8.0" in debian12.check_output("valkey-server --version")
    assert "bpo12" in debian12.check_output("dpkg-query -W -f '${Version}' valkey-server")
    assert "bookworm-backports" in debian12.file("/etc/apt/sources.list.d/llmops-backports.sources").content_string


def test_failover_and_rerun_keep_the_new_master(hosts, inv, addrs):
    old = current_master(hosts, inv, addrs)
    assert langfuse(hosts, inv, addrs[old], "SET", "test:before-failover", "b") == "OK"
    hosts[old].check_output("systemctl stop valkey-server")

    # a replica is promoted and every Sentinel reports it within 30 s
    def promoted():
        masters = set(reported_masters(hosts, inv, addrs).values())
        return len(masters) == 1 and masters != {addrs[old]}
    wait_until(promoted, 30, "the failover")
    new = current_master(hosts, inv, addrs)
    assert replication(hosts, inv, new)["role"] == "master"
    assert langfuse(hosts, inv, addrs[new], "SET", "test:after-failover", "a") == "OK"
    assert langfuse(hosts, inv, addrs[new], "GET", "test:before-failover") == "b"

    # re-running the role: it starts the stopped server again (its only change) and leaves the
    # topology to Sentinel, which turns the old master into a replica of the new one
    run = run_playbook("converge.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert f"master {new} (reported by Sentinel)" in run.stdout
    counters = recap(run.stdout)
    assert counters[old]["changed"] == 1, counters
    assert all(counters[n]["changed"] == 0 for n in counters if n != old), counters
    wait_until(lambda: healthy(hosts, inv, addrs, new), 60, f"{old} rejoining as a replica of {new}")
    assert langfuse(hosts, inv, addrs[old], "GET", "test:after-failover") == "a"
    # Sentinel rewrote the old master's file (CONFIG REWRITE); the role did not touch it
    main = hosts[old].file("/etc/valkey/valkey.conf").content_string
    assert f"replicaof {addrs[new]} 6380" in main and "# Generated by CONFIG REWRITE" in main

    run = run_playbook("converge.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert all(c["changed"] == 0 for c in recap(run.stdout).values()), recap(run.stdout)
    assert current_master(hosts, inv, addrs) == new


NEW_SETTINGS = json.dumps({"redis_sentinel_down_after_ms": 6000, "redis_config_extra": {"hz": 20}})


def test_new_settings_are_written_with_the_current_master(hosts, inv, addrs):
    """After the failover, new settings make the role rewrite valkey.conf and Sentinel's file on
    every host: with the master Sentinel reports, not the inventory's first host."""
    master = current_master(hosts, inv, addrs)
    assert master != NODES[0], "run after the failover test"
    run = run_playbook("converge.yml", "-v", "--diff", "-e", NEW_SETTINGS)
    assert run.returncode == 0, run.stdout[-3000:]
    # this run rewrites every file that holds a password (valkey.conf, the ACL file, Sentinel's
    # file) under -v --diff: none of the secrets, nor the ACL digests, is printed
    for name in SECRETS:
        assert inv[name] not in run.stdout, f"{name} printed"
    for digest in re.findall(r"#([0-9a-f]{64})", hosts[NODES[0]].file("/etc/valkey/users.acl").content_string):
        assert digest not in run.stdout
    wait_until(lambda: healthy(hosts, inv, addrs, master), 60, "the group settling")
    for name in NODES:
        main = hosts[name].file("/etc/valkey/valkey.conf").content_string
        assert "# Generated by CONFIG REWRITE" not in main
        assert ("replicaof" in main) == (name != master), name
        assert admin(hosts, inv, name, "CONFIG", "GET", "hz").split("\n")[1] == "20"
        fields = sentinel(hosts, inv, addrs[name], "SENTINEL", "MASTER", MASTER_NAME).split("\n")
        assert dict(zip(fields[::2], fields[1::2]))["down-after-milliseconds"] == "6000"


def test_check_mode_changes_nothing():
    # the settings of the run above are the converged state now
    run = run_playbook("converge.yml", "--check", "--diff", "-e", NEW_SETTINGS)
    assert run.returncode == 0, run.stdout[-3000:]
    assert all(c["changed"] == 0 for c in recap(run.stdout).values()), run.stdout[-3000:]
