"""The secret audit helper (tests/helpers/secret_audit.py) finds a planted secret - in a
world-readable file, in its URL-encoded form, in a playbook's output and in a process command
line - and ignores what only root can read. Runs locally (no container needed)."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from secret_audit import ProcessSampler, SecretAudit, secrets_from_inventory  # noqa: E402

SECRET = "pl4nted/Secret:value@42"
AUDIT_SECRETS = {"vault_redis_langfuse_password": SECRET, "vault_other_password": "n0t-planted-anywhere"}


def test_secrets_come_from_secret_looking_literal_variables():
    hostvars = {"h1": {"vault_a_password": "abcdefgh12", "redis_langfuse_password": "{{ vault_a_password }}",
                       "langfuse_init_project_public_key": "pk-lf-not-a-secret", "redis_admin_user": "admin-user",
                       "langfuse_salt": "x" * 40, "short_password": "abc"},
                "h2": {"langfuse_s3_secret_key": "s3-secret-value-1"}}
    assert secrets_from_inventory(hostvars) == {
        "vault_a_password": "abcdefgh12", "langfuse_salt": "x" * 40, "langfuse_s3_secret_key": "s3-secret-value-1"}


def test_a_planted_secret_in_a_world_readable_file_is_found(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "leaky.conf").write_text(f"password = {SECRET}\n")
    (etc / "leaky.conf").chmod(0o644)
    (etc / "private.conf").write_text(f"password = {SECRET}\n")
    (etc / "private.conf").chmod(0o600)
    (etc / "url.env").write_text("REDIS=redis://langfuse:pl4nted%2FSecret%3Avalue%4042@redis:6379\n")
    (etc / "url.env").chmod(0o644)
    findings = SecretAudit(AUDIT_SECRETS).scan_files("local", roots=(str(etc),), exec_prefix=[])
    where = sorted(f.where for f in findings)
    assert [f.name for f in findings] == ["vault_redis_langfuse_password"] * 2
    assert where == [f"world-readable file local:{etc}/leaky.conf", f"world-readable file local:{etc}/url.env"]
    assert all(SECRET not in str(f) for f in findings)


def test_a_clean_tree_has_no_finding(tmp_path):
    (tmp_path / "ok.conf").write_text("nothing to see\n")
    assert SecretAudit(AUDIT_SECRETS).scan_files("local", roots=(str(tmp_path),), exec_prefix=[]) == []


def test_playbook_output_is_searched_line_by_line():
    text = "ok: [h]\n<h> EXEC /bin/sh -c 'REDISCLI_AUTH=pl4nted/Secret:value@42 redis-cli ping'\n"
    findings = SecretAudit(AUDIT_SECRETS).scan_text(text, "converge -vvv")
    assert [str(f) for f in findings] == ["vault_redis_langfuse_password found in converge -vvv, line 2"]


def test_a_secret_in_a_command_line_is_caught_by_the_sampler():
    with ProcessSampler(["local"], exec_prefix=lambda _c: []) as sampler:
        leak = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)", SECRET])
        time.sleep(1.0)
        leak.wait()
    findings = SecretAudit(AUDIT_SECRETS).scan_command_lines(sampler.command_lines)
    assert [str(f) for f in findings] == ["vault_redis_langfuse_password found in a process command line on local"]


def test_a_secret_in_the_program_a_process_execs_later_is_caught():
    """A fork that execs its program a little later (what a shell or a module does)."""
    with ProcessSampler(["local"], exec_prefix=lambda _c: []) as sampler:
        time.sleep(0.3)  # the sampler has seen every process of this host already
        leak = subprocess.Popen(["sh", "-c", f"sleep 0.4; exec {sys.executable} -c 'import time; time.sleep(0.5)' {SECRET}"])
        leak.wait()
    findings = SecretAudit(AUDIT_SECRETS).scan_command_lines(sampler.command_lines)
    assert [str(f) for f in findings] == ["vault_redis_langfuse_password found in a process command line on local"]


def test_too_short_secrets_are_refused():
    with pytest.raises(ValueError, match="too short"):
        SecretAudit({"x_password": "abc"})
