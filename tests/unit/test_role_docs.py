"""The variable tables of the role READMEs are what tests/harness/role_docs.py generates from
meta/argument_specs.yml: an option added to a spec without regenerating the README fails here
(run `python3 tests/harness/role_docs.py` to regenerate)."""
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
import role_docs  # noqa: E402  (tests/harness, path set above)

ROLES = role_docs.roles()


def test_every_role_is_covered():
    assert [r.name for r in ROLES] == sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_readme_tables_are_generated_from_the_argument_specs(role):
    readme = role / "README.md"
    assert readme.exists(), f"{readme.relative_to(ROOT)} is missing"
    text = readme.read_text()
    assert role_docs.updated(text, role_docs.render(role), readme) == text, (
        f"{readme.relative_to(ROOT)} is out of date: run python3 tests/harness/role_docs.py")


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_option_of_every_entry_point_has_a_row(role):
    block = role_docs.render(role)
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    main = specs["main"].get("options") or {}

    def names(options, prefix=""):
        for name, option in options.items():
            yield prefix + name
            if option.get("options"):
                yield from names(option["options"], f"{prefix}{name}[]." if option.get("type") == "list"
                                 else f"{prefix}{name}.")

    for entry, spec in specs.items():
        if entry != "main" and spec.get("options") == main:
            assert f"### Entry point `{entry}`" in block
            continue
        for name in names(spec.get("options") or {}):
            assert f"\n| `{name}` |" in block, f"{role.name}: {entry}.{name} has no row"


def _role(tmp_path, options, defaults, readme_tail=""):
    role = tmp_path / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    spec = {"argument_specs": {"main": {"short_description": "Demo.", "options": options}}}
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(spec))
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
    (role / "README.md").write_text(f"# demo\n\nProse.\n\n{role_docs.BEGIN}\n{role_docs.END}\n{readme_tail}")
    return role


def test_a_new_option_makes_the_readme_stale(tmp_path):
    role = _role(tmp_path, {"demo_port": {"type": "int", "default": 1, "description": "Port."}}, {"demo_port": 1},
                 "\nMore prose.\n")
    readme = role / "README.md"
    readme.write_text(role_docs.updated(readme.read_text(), role_docs.render(role), readme))
    current = readme.read_text()
    assert current.startswith("# demo\n\nProse.\n\n") and current.endswith("\nMore prose.\n")
    assert role_docs.updated(current, role_docs.render(role), readme) == current
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    spec["argument_specs"]["main"]["options"]["demo_host"] = {"type": "str", "default": "", "description": "Host."}
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(spec))
    new = role_docs.updated(current, role_docs.render(role), readme)
    assert new != current and "| `demo_host` | str | `\"\"` | Host. |" in new


def test_markup_becomes_markdown_for_a_table_cell():
    text = role_docs.markdown([
        "C(a|b) and V(x\\)y) for O(demo_port), I(see) B(this), U(https://example.org/x),",
        "L(the docs,https://example.org/d) - a <tag> and a * star.",
    ])
    assert text == ("`a\\|b` and `x)y` for `demo_port`, _see_ **this**, <https://example.org/x>, "
                    "[the docs](https://example.org/d) - a &lt;tag> and a \\* star.")
    with pytest.raises(Exception):
        role_docs.markdown(["C(unclosed"])


def test_defaults_in_the_table(tmp_path):
    jinja = "{{ other_port | default(5432) }}"
    role = _role(tmp_path, {
        "demo_port": {"type": "int", "description": ["Port.", role_docs.default_paragraph(jinja)]},
        "demo_list": {"type": "list", "elements": "str", "default": ["a", "b"], "description": "List."},
        "demo_flag": {"type": "bool", "default": False, "description": "Flag."},
        "demo_secret": {"type": "str", "required": True, "description": "Secret."},
        "demo_mode": {"type": "str", "choices": ["", "x"], "default": "", "description": "Mode."},
    }, {"demo_port": jinja, "demo_list": ["a", "b"], "demo_flag": False, "demo_mode": ""})
    block = role_docs.render(role)
    assert "| `demo_port` | int | `{{ other_port \\| default(5432) }}` | Port. Default: " in block
    assert '| `demo_list` | list of str | `["a", "b"]` | List. |' in block
    assert "| `demo_flag` | bool | `false` | Flag. |" in block
    assert "| `demo_secret` | str | required | Secret. |" in block
    assert '| `demo_mode` | str: `""`, `x` | `""` | Mode. |' in block


def test_described_default_round_trip():
    for value in ("{{ a | default(1) }}", "{{ (b | default('none')) == 'x' }}", "{{ c ~ '\\\\' }}"):
        option = {"description": ["Text.", role_docs.default_paragraph(value) + " (why)."]}
        assert role_docs.described_default(option) == value
    assert role_docs.described_default({"description": "No default here."}) is None
