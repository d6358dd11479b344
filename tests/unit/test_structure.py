"""Structure rules of the collection (CONTRIBUTING.md):

* vars/ holds constants and data: no Jinja statements, no multi-line program, and no reference
  to a result a task registered (such a value is a set_fact next to its task);
* no role's defaults read another role's variables: shared facts come from the inventory
  contract (llmops.langfuse.llmops, llmops_*);
* day-2 playbooks are lists of include_role / import_role calls of role entry points, plus
  asserts (and block/rescue around them).
"""
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
ROLE_NAMES = [r.name for r in ROLES]
DAY0 = {"site.yml", "secrets.yml"}
DAY2_MODULES = {"ansible.builtin.include_role", "ansible.builtin.import_role", "ansible.builtin.assert",
                "ansible.builtin.fail"}


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def registered_names(role):
    names = set()
    for path in list((role / "tasks").glob("**/*.yml")) + list((role / "handlers").glob("**/*.yml")):
        names.update(re.findall(r"^\s*register:\s*(\S+)\s*$", path.read_text(), re.M))
    return names


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_vars_hold_only_data(role):
    registered = registered_names(role)
    for path in sorted((role / "vars").glob("*.yml")):
        literal = re.findall(r"^\s*(?:- )?([A-Za-z_][A-Za-z0-9_]*):\s*\|[-+]?\s*$", path.read_text(), re.M)
        assert not literal, f"{path.relative_to(ROOT)}: {literal} hold literal text blocks (programs?): move them out"
        data = yaml.safe_load(path.read_text()) or {}
        for name, value in data.items():
            for text in strings(value):
                where = f"{path.relative_to(ROOT)}: {name}"
                assert "{%" not in text, f"{where} is a Jinja program: move it into a filter or module"
                used = sorted(r for r in registered if re.search(rf"\b{re.escape(r)}\b", text))
                assert not used, f"{where} reads the registered result(s) {used}: use a set_fact next to the task"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_defaults_read_no_other_role(role):
    others = [n for n in ROLE_NAMES if n not in (role.name, "llmops")]
    path = role / "defaults" / "main.yml"
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    for name, value in (data or {}).items():
        for text in strings(value):
            for expr in re.findall(r"\{\{(.*?)\}\}", text, re.S):
                foreign = sorted({ident for ident in re.findall(r"\b([a-z][a-z0-9_]*)\b", expr)
                                  if any(ident.startswith(f"{other}_") for other in others)})
                assert not foreign, (f"{role.name} default {name} reads {foreign} of another role: "
                                     "take it from the inventory contract (llmops_*)")


def test_the_defaults_rule_catches_a_foreign_read(tmp_path):
    """The rule above is not vacuous: a default reading postgresql_port is found."""
    text = "{{ postgresql_port | default(5432) }}"
    others = [n for n in ROLE_NAMES if n not in ("langfuse", "llmops")]
    found = [i for i in re.findall(r"\b([a-z][a-z0-9_]*)\b", text) if any(i.startswith(f"{o}_") for o in others)]
    assert found == ["postgresql_port"]


def tasks_of(play):
    for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
        yield from play.get(key) or []


def flatten(tasks):
    for task in tasks:
        if "block" in task:
            yield from flatten(task["block"])
            yield from flatten(task.get("rescue") or [])
            yield from flatten(task.get("always") or [])
        else:
            yield task


DAY2 = sorted(p for p in (ROOT / "playbooks").glob("*.yml") if p.name not in DAY0)


def test_there_are_day2_playbooks():
    assert "upgrade.yml" in [p.name for p in DAY2]


@pytest.mark.parametrize("playbook", DAY2, ids=lambda p: p.name)
def test_day2_playbooks_only_call_role_entry_points(playbook):
    for play in yaml.safe_load(playbook.read_text()):
        if "import_playbook" in play:
            continue
        assert not play.get("roles"), f"{playbook.name}: play '{play.get('name')}' uses roles: (call entry points)"
        for task in flatten(tasks_of(play)):
            module = next((k for k in task if k.startswith("ansible.builtin.") or "." in k and k not in
                           ("delegate_to", "run_once")), None)
            assert module in DAY2_MODULES, (
                f"{playbook.name}: task '{task.get('name')}' runs {module}: day-2 playbooks only call role entry "
                "points (include_role / import_role) and assert")


def _tasks_from_calls():
    """(role, entry point) of every include_role/import_role with tasks_from in playbooks/ and roles/."""
    calls = set()
    for path in list((ROOT / "playbooks").glob("*.yml")) + list((ROOT / "roles").glob("*/tasks/*.yml")):
        text = path.read_text()
        for match in re.finditer(r"name: (.+)\n(?:\s+\w+:.*\n)*?\s+tasks_from: (\w+)", text):
            role, entry = match.group(1).strip("\"'"), match.group(2)
            calls.add((path.relative_to(ROOT).as_posix(), role, entry))
    return sorted(calls)


def test_every_entry_point_the_playbooks_call_has_an_argument_spec():
    roles = {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()}
    missing = []
    calls = _tasks_from_calls()
    assert len(calls) > 10, calls  # the scan finds the calls
    for where, role, entry in calls:
        if role.split(".")[-1] in roles:
            names = [role.split(".")[-1]]
        else:  # a templated name: the roles of the loop in that file
            names = sorted(set(re.findall(r"role: llmops\.langfuse\.(\w+)", (ROOT / where).read_text())))
        for name in names:
            if not (ROOT / "roles" / name / "tasks" / f"{entry}.yml").exists():
                continue
            specs = yaml.safe_load((ROOT / "roles" / name / "meta" / "argument_specs.yml").read_text())["argument_specs"]
            if entry not in specs:
                missing.append(f"{name}:{entry} (called from {where})")
    assert not missing, missing


@pytest.mark.parametrize("playbook", sorted(p.name for p in (ROOT / "playbooks").glob("*.yml")))
def test_no_play_is_listed_twice(playbook):
    """A play copied twice runs its role twice on every run (seen: the backup play of site.yml)."""
    plays = [play for play in yaml.safe_load((ROOT / "playbooks" / playbook).read_text()) if "hosts" in play]
    keys = [(play.get("name"), str(play.get("hosts"))) for play in plays]
    assert len(keys) == len(set(keys)), [key for key in keys if keys.count(key) > 1]
