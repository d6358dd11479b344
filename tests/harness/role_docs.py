"""Variable tables of the role READMEs, generated from each role's meta/argument_specs.yml.

``python3 tests/harness/role_docs.py`` rewrites the part of every ``roles/*/README.md`` between
the two marker comments below (everything else in a README is hand-written and left alone);
``--check`` only reports the READMEs that are not what it would write and exits 1.
tests/unit/test_role_docs.py runs the check, so an option added to an argument spec without
regenerating the README fails the unit tests.

The table lists every option of every entry point (suboptions as ``parent[].key`` for lists
of dicts, ``parent.key`` for dicts) with its type, default and description. Descriptions are
Ansible markup (``C()``, ``V()``, ``O()``, ``U()``, ``L()``, ...), parsed with
antsibull-docs-parser and written as Markdown.

Defaults: antsibull-docs checks a spec ``default`` against the option's type, so the Jinja
default of an option that is not a string (``langfuse_database_port: "{{ postgresql_port |
default(5432) }}"``) cannot be the spec's ``default``. Such an option has no ``default`` in the
spec; its description ends with the paragraph ``default_paragraph()`` makes of the value in
defaults/main.yml (``Default: V(...).``, with the markup escapes), which this module reads back
and tests/unit/test_argument_specs.py compares with defaults/main.yml.

Needs PyYAML and antsibull-docs-parser (both in the tools venv, requirements.txt).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- BEGIN role_docs: generated from meta/argument_specs.yml by tests/harness/role_docs.py, do not edit -->"
END = "<!-- END role_docs -->"
DEFAULT_PREFIX = "Default: "
_DEFAULT_RE = re.compile(r"^Default: V\((?P<value>(?:[^\\)]|\\.)*)\)")


# --------------------------------------------------------------------------- defaults
def markup_escape(value: str) -> str:
    """Escape a value for V(...): a backslash and a closing parenthesis get a backslash."""
    return value.replace("\\", "\\\\").replace(")", "\\)")


def default_paragraph(value: str) -> str:
    """The description paragraph that documents a Jinja default the spec cannot hold."""
    return f"{DEFAULT_PREFIX}V({markup_escape(value)})"


def paragraphs(option: dict) -> list[str]:
    description = option.get("description") or []
    return [description] if isinstance(description, str) else list(description)


def described_default(option: dict):
    """The value of a ``Default: V(...)`` paragraph of the description, or None."""
    for par in paragraphs(option):
        match = _DEFAULT_RE.match(par)
        if match:
            return re.sub(r"\\(.)", r"\1", match.group("value"))
    return None


def is_jinja(value) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


# --------------------------------------------------------------------------- markup
def _cell(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("`", "\\`")
            .replace("<", "&lt;").replace("\n", " "))


def code(text: str) -> str:
    """A Markdown code span, usable in a table cell."""
    text = str(text).replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") or text == "" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _formatter():
    """The Markdown formatter (antsibull-docs-parser is imported only when a table is rendered)."""
    from antsibull_docs_parser import dom  # pylint: disable=import-outside-toplevel
    from antsibull_docs_parser.format import Formatter  # pylint: disable=import-outside-toplevel

    class _MarkdownCell(Formatter):
        """Ansible markup -> Markdown, for one table cell (no HTML but &lt;)."""

        def format_error(self, part: dom.ErrorPart) -> str:
            raise ValueError(part.message)

        def format_bold(self, part: dom.BoldPart) -> str:
            return f"**{_cell(part.text)}**"

        def format_code(self, part: dom.CodePart) -> str:
            return code(part.text)

        def format_horizontal_line(self, part: dom.HorizontalLinePart) -> str:
            return " "

        def format_italic(self, part: dom.ItalicPart) -> str:
            return f"_{_cell(part.text)}_"

        def format_link(self, part: dom.LinkPart) -> str:
            return f"[{_cell(part.text)}]({part.url})"

        def format_module(self, part: dom.ModulePart, url: str | None) -> str:
            return code(part.fqcn)

        def format_rst_ref(self, part: dom.RSTRefPart) -> str:
            return _cell(part.text)

        def format_url(self, part: dom.URLPart) -> str:
            return f"<{part.url}>"

        def format_text(self, part: dom.TextPart) -> str:
            return _cell(part.text)

        def format_env_variable(self, part: dom.EnvVariablePart) -> str:
            return code(part.name)

        def format_option_name(self, part: dom.OptionNamePart, url: str | None) -> str:
            return code(part.name if part.value is None else f"{part.name}={part.value}")

        def format_option_value(self, part: dom.OptionValuePart) -> str:
            return code(part.value)

        def format_plugin(self, part: dom.PluginPart, url: str | None) -> str:
            return code(part.plugin.fqcn)

        def format_return_value(self, part: dom.ReturnValuePart, url: str | None) -> str:
            return code(part.name if part.value is None else f"{part.name}={part.value}")

    return _MarkdownCell()


def markdown(pars: list[str]) -> str:
    """Ansible markup paragraphs -> one line of Markdown for a table cell."""
    from antsibull_docs_parser.md import to_md  # pylint: disable=import-outside-toplevel
    from antsibull_docs_parser.parser import Context, parse  # pylint: disable=import-outside-toplevel

    if not hasattr(markdown, "formatter"):
        markdown.formatter = _formatter()
    parsed = parse(pars, Context(), errors="exception")
    return to_md(parsed, formatter=markdown.formatter, par_sep=" ").strip()


# --------------------------------------------------------------------------- tables
def format_default(option: dict, name: str, defaults: dict) -> str:
    if "default" in option:
        value = option["default"]
    elif name in defaults:
        value = defaults[name]
    elif described_default(option) is not None:
        value = described_default(option)
    else:
        return "required" if option.get("required") else "none"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return code("true" if value else "false")
    if isinstance(value, (int, float)):
        return code(value)
    if isinstance(value, str):
        return code(" ".join(value.split()) if is_jinja(value) else value) if value else code('""')
    return code(json.dumps(value, separators=(", ", ": ")))


def format_type(option: dict) -> str:
    kind = option.get("type", "str")
    if option.get("elements"):
        kind = f"{kind} of {option['elements']}"
    if option.get("choices"):
        kind += ": " + ", ".join(code(c) if c != "" else code('""') for c in option["choices"])
    return kind


def rows(options: dict, defaults: dict, prefix: str = "") -> list[str]:
    out = []
    for name, option in options.items():
        full = f"{prefix}{name}"
        text = markdown(paragraphs(option))
        out.append(f"| {code(full)} | {format_type(option)} | {format_default(option, full, defaults)} | {text} |")
        if option.get("options"):
            sub = f"{full}[]." if option.get("type") == "list" else f"{full}."
            out.extend(rows(option["options"], {}, sub))
    return out


def table(options: dict, defaults: dict) -> list[str]:
    return ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |", *rows(options, defaults)]


def render(role: Path) -> str:
    """The generated block of one role (markers included)."""
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    defaults_file = role / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    main = specs.get("main", {}).get("options") or {}
    lines = [BEGIN, ""]
    for entry, spec in specs.items():
        options = spec.get("options") or {}
        lines.append(f"### Entry point `{entry}`")
        lines.append("")
        summary = spec.get("short_description", "")
        if summary:
            lines += [markdown([summary]).rstrip(".") + ".", ""]
        if entry != "main" and options == main:
            lines += ["Takes the same variables as `main`.", ""]
            continue
        if not options:
            lines += ["No variables.", ""]
            continue
        lines += [*table(options, defaults), ""]
    lines.append(END)
    return "\n".join(lines)


def updated(readme_text: str, block: str, readme: Path) -> str:
    if readme_text.count(BEGIN) != 1 or readme_text.count(END) != 1:
        raise ValueError(f"{readme}: needs exactly one pair of role_docs markers:\n{BEGIN}\n{END}")
    head, rest = readme_text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    return head + block + tail


def roles() -> list[Path]:
    return sorted(p.parent.parent for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="report outdated READMEs, change nothing")
    parser.add_argument("roles", nargs="*", help="role names (default: every role)")
    args = parser.parse_args(argv)
    selected = [ROOT / "roles" / r for r in args.roles] if args.roles else roles()
    stale = []
    for role in selected:
        readme = role / "README.md"
        if not readme.exists():
            print(f"missing: {readme.relative_to(ROOT)} (write its prose and the two role_docs markers)")
            return 1
        text = readme.read_text()
        try:
            new = updated(text, render(role), readme)
        except ValueError as exc:
            print(exc)
            return 1
        if new != text:
            stale.append(readme.relative_to(ROOT))
            if not args.check:
                readme.write_text(new)
    for path in stale:
        print(f"{'outdated' if args.check else 'rewrote'}: {path}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
