"""llmops.langfuse.secret_set: generation rules (pure functions) and the action end to end
(ansible-playbook on localhost, with and without a vault password)."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("secret_set_action", ROOT / "plugins/action/secret_set.py")
secret_set = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(secret_set)

SPEC = {
    "vault_key": {"kind": "hex", "length": 64},
    "vault_pass": {"kind": "password", "length": 24},
    "vault_nextauth": {"kind": "base64", "length": 32},
    "vault_pk": {"kind": "uuid", "prefix": "pk-lf-"},
}


def test_kinds_produce_the_documented_shapes():
    spec = secret_set.validate_spec(SPEC)
    values = {name: secret_set.generate(item) for name, item in spec.items()}
    assert re.fullmatch(r"[0-9a-f]{64}", values["vault_key"])
    assert re.fullmatch(r"[A-Za-z0-9]{24}", values["vault_pass"])
    assert len(__import__("base64").b64decode(values["vault_nextauth"])) == 32
    assert re.fullmatch(r"pk-lf-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", values["vault_pk"])


def test_values_are_random():
    item = secret_set.validate_spec({"x": {"kind": "password"}})["x"]
    assert len({secret_set.generate(item) for _index in range(50)}) == 50


def test_merge_never_overwrites_and_fills_empty_values():
    spec = secret_set.validate_spec(SPEC)
    existing = {"vault_key": "a" * 64, "vault_pass": "", "unrelated": 1}
    merged, generated = secret_set.merge(existing, spec)
    assert merged["vault_key"] == "a" * 64 and merged["unrelated"] == 1
    assert sorted(generated) == ["vault_nextauth", "vault_pass", "vault_pk"]
    assert merged["vault_pass"]


@pytest.mark.parametrize("spec, message", [
    ({}, "non-empty dict"),
    ({"a": {"kind": "rot13"}}, "kind 'rot13' is not one of"),
    ({"a": {"length": 8}}, "length 8 must be an integer from 16 to 256"),
    ({"a": {"length": True}}, "length True"),
    ({"a": {"size": 3}}, "unknown keys \\['size'\\]"),
])
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        secret_set.validate_spec(spec)


# ------------------------------------------------------------------ end to end
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - llmops.langfuse.secret_set:
        path: "{{ target }}"
        secrets:
          vault_key: {kind: hex, length: 64}
          vault_pass: {kind: password}
      register: out
    - ansible.builtin.debug:
        msg: "GENERATED={{ out.generated | join(',') }} ENCRYPTED={{ out.encrypted }}"
"""


@pytest.fixture()
def env(tmp_path):
    link = tmp_path / "collections" / "ansible_collections" / "llmops" / "langfuse"
    link.parent.mkdir(parents=True)
    link.symlink_to(ROOT)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    e = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"), ANSIBLE_NOCOLOR="1",
             ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
    e.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    return e


def play(tmp_path, env, *args):
    bindir = Path(sys.executable).parent
    run = subprocess.run([bindir / "ansible-playbook", "-i", "localhost,", str(tmp_path / "play.yml"),
                          "-e", f"target={tmp_path / 'vault.yml'}", *args],
                         env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_plain_file_generated_once_and_kept(tmp_path, env):
    out = play(tmp_path, env)
    assert "GENERATED=vault_key,vault_pass ENCRYPTED=False" in out and "changed=1" in out
    target = tmp_path / "vault.yml"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    first = yaml.safe_load(target.read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", first["vault_key"])
    # second run: nothing generated, file untouched
    out = play(tmp_path, env)
    assert "GENERATED= " in out and "changed=0" in out
    assert yaml.safe_load(target.read_text()) == first
    # a value deleted is generated again, the others are kept
    target.write_text(yaml.safe_dump({"vault_key": first["vault_key"]}))
    out = play(tmp_path, env)
    assert "GENERATED=vault_pass" in out
    again = yaml.safe_load(target.read_text())
    assert again["vault_key"] == first["vault_key"] and again["vault_pass"]


def test_encrypted_with_the_runs_vault_password(tmp_path, env):
    password_file = tmp_path / "vault-pass"
    password_file.write_text("correct horse battery staple\n")
    out = play(tmp_path, env, "--vault-password-file", str(password_file))
    assert "ENCRYPTED=True" in out
    raw = (tmp_path / "vault.yml").read_text()
    assert raw.startswith("$ANSIBLE_VAULT;1.1;AES256")
    bindir = Path(sys.executable).parent
    plain = subprocess.run([bindir / "ansible-vault", "view", "--vault-password-file", str(password_file),
                            str(tmp_path / "vault.yml")], env=env, capture_output=True, text=True, check=True).stdout
    values = yaml.safe_load(plain)
    assert re.fullmatch(r"[0-9a-f]{64}", values["vault_key"])
    # re-run with the password: decrypted, nothing to add, unchanged
    out = play(tmp_path, env, "--vault-password-file", str(password_file))
    assert "changed=0" in out
    assert (tmp_path / "vault.yml").read_text() == raw


def test_values_never_printed(tmp_path, env):
    out = play(tmp_path, env, "-vvv")
    values = yaml.safe_load((tmp_path / "vault.yml").read_text())
    assert values["vault_key"] not in out and values["vault_pass"] not in out
