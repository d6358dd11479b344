"""Behaviour of the common role on two hosts (common-gateway in group edge, common-other in
group backend, which opens port 8080 to edge)."""
import json

import pytest
from conftest import address, can_connect, listen, recap, run_playbook, stop_listening

GATEWAY, OTHER = "common-gateway", "common-other"


def test_firewall_is_default_deny_and_loaded(hosts):
    for host in hosts.values():
        assert host.service("llmops-firewall").is_enabled
        assert host.run("systemctl is-active llmops-firewall").stdout.strip() == "active"
        chain = json.loads(host.check_output("nft -j list chain inet llmops_filter input"))
        base = [i["chain"] for i in chain["nftables"] if "chain" in i][0]
        assert base["hook"] == "input" and base["policy"] == "drop"


def test_opened_port_reachable_only_from_its_group(hosts):
    gateway, other = hosts[GATEWAY], hosts[OTHER]
    for port in (8080, 9100):
        listen(other, port)
        listen(gateway, port)
    try:
        # 8080 on "other" is opened to group edge (the gateway)
        assert can_connect(gateway, address(other), 8080)
        # 9100 is opened to nobody: dropped
        assert not can_connect(gateway, address(other), 9100)
        # the gateway opened nothing to "other"
        assert not can_connect(other, address(gateway), 8080)
        # the listeners themselves are up (loopback is always allowed)
        assert can_connect(other, "127.0.0.1", 9100)
    finally:
        for port in (8080, 9100):
            stop_listening(other, port)
            stop_listening(gateway, port)


def test_role_openings_apply_through_the_entry_point(hosts):
    gateway, other = hosts[GATEWAY], hosts[OTHER]
    assert other.file("/etc/nftables.d/llmops/probe.nft").mode == 0o600
    listen(other, 9300)
    try:
        assert can_connect(gateway, address(other), 9300)
    finally:
        stop_listening(other, 9300)
    # a reload replaces only our table: a foreign table (Docker's, say) survives it
    other.check_output("nft add table ip foreign_probe")
    try:
        other.check_output("systemctl reload llmops-firewall")
        assert "table ip foreign_probe" in other.check_output("nft list tables")
    finally:
        other.run("nft delete table ip foreign_probe")


def test_ssh_port_stays_open(hosts):
    gateway, other = hosts[GATEWAY], hosts[OTHER]
    listen(other, 22)  # no sshd in test hosts: a listener on 22 shows what the firewall lets in
    try:
        assert can_connect(gateway, address(other), 22)
    finally:
        stop_listening(other, 22)


def test_timezone_is_utc(hosts):
    for host in hosts.values():
        assert host.check_output("date +%Z") == "UTC"
        assert host.file("/etc/localtime").linked_to.endswith("/UTC")


def test_chrony_configuration_parses(hosts):
    for host in hosts.values():
        conf = host.check_output("chronyd -p -f /etc/chrony/chrony.conf")
        assert "pool 2.debian.pool.ntp.org iburst" in conf
        assert host.service("chrony").is_enabled


def test_sysctls_skipped_in_containers(hosts):
    # the scenario asks for vm.swappiness=37 and net.core.somaxconn=1234
    for host in hosts.values():
        assert not host.file("/etc/sysctl.d/60-llmops-common.conf").exists
        assert host.check_output("cat /proc/sys/vm/swappiness") != "37"
        assert host.check_output("cat /proc/sys/net/core/somaxconn") != "1234"


def test_check_mode_is_clean_and_reports_the_sysctl_skip():
    run = run_playbook("converge.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Skipping 2 kernel settings of common" in run.stdout
    assert all(c["changed"] == 0 for c in recap(run.stdout).values()), run.stdout[-3000:]


@pytest.mark.parametrize("rule, message", [
    ({"name": "bad-proto", "port": 80, "proto": "sctp", "sources": ["10.0.0.0/8"]},
     "value of proto must be one of: tcp, udp, got: sctp"),
    ({"name": "bad-port", "port": 70000, "sources": ["10.0.0.0/8"]},
     "common_firewall_rules rule 'bad-port': port 70000 is not a port number"),
    ({"name": "bad-group", "port": 80, "sources": ["no_such_group"]},
     "common_firewall_rules rule 'bad-group': source 'no_such_group' is neither"),
])
def test_invalid_rule_fails_before_any_change(hosts, rule, message):
    before = {name: h.check_output("nft list ruleset") for name, h in hosts.items()}
    extra = json.dumps({"common_firewall_rules": [rule]})
    run = run_playbook("converge.yml", "-e", extra)
    assert run.returncode != 0
    assert message in run.stdout, run.stdout[-3000:]
    counters = recap(run.stdout)
    assert set(counters) == set(hosts)
    assert all(c["changed"] == 0 and c["failed"] == 1 for c in counters.values()), counters
    assert before == {name: h.check_output("nft list ruleset") for name, h in hosts.items()}


def test_security_updates_take_the_security_archive_only_and_never_reboot(hosts):
    """unattended-upgrades itself (a dry run) reads the role's origins and blacklist; the apt
    timers that run it are active; no reboot is configured."""
    for host in hosts.values():
        codename = host.system_info.codename
        run = host.run("unattended-upgrade --dry-run --debug")
        assert run.rc == 0, run.stderr
        out = run.stdout + run.stderr
        origins = [line for line in out.splitlines() if "Allowed origins are:" in line]
        assert origins, out[-2000:]
        allowed = set(origins[0].split("Allowed origins are:", 1)[1].strip().split(", "))
        # Debian's default also takes the point releases (label=Debian): cleared by the role
        assert allowed == {f"origin=Debian,codename={codename},label=Debian-Security",
                           f"origin=Debian,codename={codename}-security,label=Debian-Security"}, allowed
        assert "Initial blacklist: postgresql-[0-9]+$ pgbouncer$ redis-server$ valkey-server$ docker containerd" in out
        config = host.check_output("apt-config dump")
        assert 'Unattended-Upgrade::Automatic-Reboot "false";' in config
        assert "Automatic-Reboot-Time" not in config
        assert 'APT::Periodic::Unattended-Upgrade "1";' in config
        for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
            assert host.service(timer).is_enabled and host.service(timer).is_running, timer
        # needrestart reports (batch mode) and is configured to restart nothing
        assert host.run("needrestart -b").rc == 0
        assert "$nrconf{restart} = 'l';" in host.file("/etc/needrestart/conf.d/llmops.conf").content_string


def test_fluent_bit_fails_before_any_change_when_its_repository_is_unreachable(hosts):
    """packages.fluentbit.io cannot be reached from these hosts: the role stops in its preflight,
    naming the repository, and the host has no key, source, configuration or package of it."""
    paths = ("/etc/apt/keyrings/fluent-bit.asc", "/etc/apt/sources.list.d/fluent-bit.sources", "/etc/fluent-bit",
             "/var/lib/fluent-bit", "/etc/systemd/system/fluent-bit.service.d", "/opt/fluent-bit")
    run = run_playbook("fluent_bit.yml")
    assert run.returncode != 0
    flat = " ".join(run.stdout.split())
    for name in hosts:
        assert (f"Fluent Bit's apt repository cannot be reached from {name}: "
                "GET https://packages.fluentbit.io/fluentbit.key answered") in flat, run.stdout[-3000:]
    assert "Nothing was changed on the host." in flat
    assert "molecule-Test-Secret-3Hj7" not in run.stdout
    counters = recap(run.stdout)
    assert set(counters) == set(hosts)
    assert all(c["changed"] == 0 and c["failed"] == 1 for c in counters.values()), counters
    for host in hosts.values():
        assert not [p for p in paths if host.file(p).exists], host
        assert host.run("dpkg-query -W fluent-bit").rc != 0
