"""The converged stack, disturbed, converged again with -vvv --diff (runs before test_default.py,
whose rolling upgrade changes the release):

* drift is put right: a configuration file edited by hand (PostgreSQL's tuned drop-in), a
  service stopped (Redis), a firewall rule deleted from the live table (HTTPS on the LB);
* the re-run changes nothing but the drift: every host reports changed=0 except the three
  drifted ones, and there only tasks of the role that owns the drift report a change (molecule's
  idempotence step before verify asserts changed=0 everywhere);
* the secret audit (tests/helpers/secret_audit.py): no secret of the inventory, nor its
  percent-encoded forms, in the whole -vvv --diff output, in any world-readable file under
  /etc, /opt, /srv, /var/log and /home of any host, or in the command line of any process seen
  on any host while the playbook ran.
"""
import re
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import address, can_connect, recap, run_playbook

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "helpers"))
from secret_audit import ProcessSampler, SecretAudit  # noqa: E402

VAULT = ROOT / "inventories" / "lab" / "group_vars" / "all" / "vault.yml"
HOSTS = ["default-lb", "default-app1", "default-app2", "default-pg1", "default-pg2", "default-redis1",
         "default-mon1", "default-client"]
LB, PG1, REDIS, CLIENT = "default-lb", "default-pg1", "default-redis1", "default-client"
PG_DROPIN = "/etc/postgresql/15/main/conf.d/60-llmops.conf"
# the only changes the re-run may make: on each drifted host, tasks of the role owning the drift
DRIFT_OWNERS = {PG1: "llmops.langfuse.postgresql : ", REDIS: "llmops.langfuse.redis : ",
                LB: "llmops.langfuse.common : "}


def changed_tasks(output: str) -> dict[str, list[str]]:
    """host -> names of the tasks and handlers that reported `changed` in a playbook's output."""
    changed: dict[str, list[str]] = {}
    task = ""
    for line in output.splitlines():
        header = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.+)\] \*+$", line)
        if header:
            task = header.group(1)
            continue
        result = re.match(r"^changed: \[([^\]\s]+)(?: -> [^\]]+)?\]", line)
        if result and task not in changed.setdefault(result.group(1), []):
            changed[result.group(1)].append(task)
    return changed


def https_rule_handle(lb):
    listing = lb.check_output("nft -a list chain inet llmops_filter openings")
    match = re.search(r'comment "nginx-https" # handle (\d+)', listing)
    assert match, listing
    return match.group(1)


@pytest.fixture(scope="module")
def converge_after_drift(hosts):
    """Introduce the drift, then run site.yml with -vvv --diff while every host's processes are
    sampled. Returns (output, recap, command lines, the drop-in as it was)."""
    dropin = hosts[PG1].file(PG_DROPIN).content_string
    assert "work_mem = " in dropin
    hosts[PG1].check_output(f"sed -i \"s/^work_mem = .*/work_mem = '1MB'/\" {PG_DROPIN}")
    hosts[REDIS].check_output("systemctl stop redis-server")
    hosts[LB].check_output("nft delete rule inet llmops_filter openings handle %s", https_rule_handle(hosts[LB]))
    assert not can_connect(hosts[CLIENT], address(hosts[LB]), 443)
    with ProcessSampler(HOSTS) as sampler:
        start = time.monotonic()
        out = run_playbook("converge.yml", "-vvv", "--diff")
        seconds = time.monotonic() - start
    print(f"site.yml -vvv --diff after drift: {seconds:.0f} s")
    assert out.returncode == 0, out.stdout[-4000:]
    print("changed tasks:", changed_tasks(out.stdout))
    return out.stdout, recap(out.stdout), sampler.command_lines, dropin


def test_the_re_run_changes_only_what_drifted(converge_after_drift):
    out, counts, _lines, _dropin = converge_after_drift
    assert set(counts) == set(HOSTS), counts
    changed = changed_tasks(out)
    others = {h: c["changed"] for h, c in counts.items() if h not in DRIFT_OWNERS and c["changed"]}
    assert not others, (others, changed)
    for host, prefix in DRIFT_OWNERS.items():
        assert changed.get(host), (host, changed)
        foreign = [t for t in changed[host] if not t.startswith(prefix)]
        assert not foreign, f"{host}: changed outside {prefix!r}: {foreign}"


def test_an_edited_configuration_file_is_put_back(hosts, converge_after_drift):
    _out, counts, _lines, dropin = converge_after_drift
    assert hosts[PG1].file(PG_DROPIN).content_string == dropin
    assert counts[PG1]["changed"] >= 1
    running = hosts[PG1].check_output("runuser -u postgres -- psql -XAtq -c 'SHOW work_mem'")
    assert f"work_mem = '{running}'" in dropin


def test_a_stopped_service_is_started(hosts, converge_after_drift):
    _out, counts, _lines, _dropin = converge_after_drift
    assert hosts[REDIS].service("redis-server").is_running
    assert counts[REDIS]["changed"] >= 1


def test_a_deleted_firewall_rule_is_restored(hosts, converge_after_drift):
    _out, counts, _lines, _dropin = converge_after_drift
    assert can_connect(hosts[CLIENT], address(hosts[LB]), 443)
    assert counts[LB]["changed"] >= 1
    https_rule_handle(hosts[LB])


@pytest.fixture(scope="module")
def audit():
    # every value of the vault but the project's public key (a user name, in logs by design)
    secrets = {name: str(value) for name, value in yaml.safe_load(VAULT.read_text()).items()
               if "public_key" not in name}
    assert len(secrets) >= 17, sorted(secrets)
    return SecretAudit(secrets)


def test_no_secret_in_the_vvv_diff_output(audit, converge_after_drift):
    out, _counts, _lines, _dropin = converge_after_drift
    assert len(out) > 100_000  # -vvv: every task's module arguments and results
    findings = audit.scan_text(out, "site.yml -vvv --diff")
    assert not findings, "\n".join(map(str, findings))


def test_no_secret_in_a_process_command_line(audit, converge_after_drift):
    _out, _counts, lines, _dropin = converge_after_drift
    assert set(lines) == set(HOSTS) and all(lines.values()), {h: len(v) for h, v in lines.items()}
    findings = audit.scan_command_lines(lines)
    assert not findings, "\n".join(map(str, findings))


@pytest.mark.parametrize("host", HOSTS)
def test_no_secret_in_a_world_readable_file(audit, converge_after_drift, host):
    findings = audit.scan_files(host)
    assert not findings, "\n".join(map(str, findings))
