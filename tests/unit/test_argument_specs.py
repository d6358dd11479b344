"""meta/argument_specs.yml is the single source of truth for role variables: every default in
defaults/main.yml must be declared there with the same default, and every option of the main
entry point that has a default must be in defaults/main.yml.

One exception, forced by antsibull-docs (it checks a spec default against the option's type):
the Jinja default of an option that is not a string is declared in the option's description,
as the paragraph tests/harness/role_docs.py's default_paragraph() makes of it, instead of as
``default``; it is compared with defaults/main.yml all the same."""
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
import role_docs  # noqa: E402  (tests/harness, path set above)

# types whose spec default antsibull-docs accepts as any string (a Jinja default stays a default)
STRING_TYPES = ("str", "path", "raw")
ROLES = sorted(p.parent.parent for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
ALL_ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


def load(path):
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def test_every_role_has_argument_specs():
    assert ALL_ROLES, "no roles found"
    assert [r.name for r in ROLES] == [r.name for r in ALL_ROLES]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_defaults_and_argument_specs_agree(role):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    undeclared = sorted(set(defaults) - set(options))
    assert not undeclared, f"defaults not in argument_specs: {undeclared}"
    for name, value in defaults.items():
        option = options[name]
        if "default" not in option and role_docs.is_jinja(value) \
                and option.get("type", "str") not in STRING_TYPES:
            described = role_docs.described_default(option)
            assert described == value, (
                f"{name}: defaults {value!r} != the description's default {described!r}; the description "
                f"needs the paragraph {role_docs.default_paragraph(value)!r}")
            continue
        assert "default" in option, f"{name}: argument_specs has no default"
        assert option["default"] == value, f"{name}: defaults {value!r} != spec {option['default']!r}"
    missing = sorted(n for n, o in options.items()
                     if ("default" in o or role_docs.described_default(o) is not None) and n not in defaults)
    assert not missing, f"argument_specs defaults missing from defaults/main.yml: {missing}"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_options_are_documented_and_prefixed(role):
    for entry, spec in load(role / "meta" / "argument_specs.yml")["argument_specs"].items():
        for name, option in (spec.get("options") or {}).items():
            assert option.get("description"), f"{entry}.{name} has no description"
            # settings are <role>_*; parameters one role passes to another's entry point are
            # _<role>_* (internal to the caller-callee pair), never on main or preflight
            prefixes = (f"{role.name}_",) if entry in ("main", "preflight") else (f"{role.name}_", f"_{role.name}_")
            assert name.startswith(prefixes), f"{entry}.{name} is not prefixed with {' or '.join(prefixes)}"


SECRET_WORDS = ("password", "secret", "salt", "encryption_key", "private_key")


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_secret_options_have_no_default(role):
    """Secrets come from the inventory (vault), never from a default. A default may only point
    at another variable (e.g. the owning role's), never hold a value."""
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, option in options.items():
        if not any(word in name for word in SECRET_WORDS) or option.get("type") == "bool":
            continue
        default = option.get("default")
        is_reference = isinstance(default, str) and re.fullmatch(r"\{\{ *[a-z_][a-z0-9_]* *\}\}", default)
        assert default in (None, "") or is_reference, f"{name} has a default value"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_templates_carry_the_ansible_managed_header(role):
    for template in (role / "templates").glob("**/*.j2"):
        if template.name.startswith("_"):
            continue  # macro libraries imported by other templates
        assert "ansible_managed" in template.read_text(), f"{template.relative_to(ROOT)} has no header"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_no_option_is_both_required_and_defaulted(role):
    """ansible-core refuses such a spec at run time ('required and default are mutually exclusive')."""
    for entry, spec in load(role / "meta" / "argument_specs.yml")["argument_specs"].items():
        for name, option in (spec.get("options") or {}).items():
            assert not (option.get("required") and "default" in option), f"{entry}.{name}: required and default"
