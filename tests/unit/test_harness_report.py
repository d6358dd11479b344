"""The harness's report of a failed scenario (tests/harness/devenv.py): CI keeps only the tail of a
run's output, so the summary ends with the lines that say why each scenario failed."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "harness"))
import devenv  # noqa: E402  pylint: disable=wrong-import-position

LOG = """\
INFO     [langfuse > check] Executing
TASK [Gathering Facts] *********************************************************
ok: [langfuse-app]
fatal: [langfuse-pg]: UNREACHABLE! => {"changed": false, "msg": "Connection timed out.", "unreachable": true}
failed: [localhost] (item=langfuse-app) =>
    rc: 1
    stderr: 'Failed to connect to bus: No such file or directory'
PLAY RECAP *********************************************************************
langfuse-app               : ok=1    changed=0    unreachable=0    failed=0    skipped=0
langfuse-pg                : ok=0    changed=0    unreachable=1    failed=0    skipped=0
CRITICAL Ansible return code was 4, command was: ansible-playbook --check
WARNING  An error occurred during the test sequence action: 'check'. Cleaning up.
"""


def test_excerpt_keeps_the_error_lines_and_the_last_line():
    lines = devenv.failure_excerpt(LOG)
    assert lines[0].startswith("fatal: [langfuse-pg]: UNREACHABLE!")
    assert lines[1] == "failed: [localhost] (item=langfuse-app) =>"
    assert lines[2] == "stderr: 'Failed to connect to bus: No such file or directory'"
    assert "langfuse-pg                : ok=0    changed=0    unreachable=1" in lines[3]
    assert lines[4].startswith("CRITICAL Ansible return code was 4")
    assert lines[-1].startswith("WARNING  An error occurred")
    # the healthy host's recap line, the ok results and the return code are not repeated
    assert not any(line.startswith(("ok:", "langfuse-app", "rc:")) for line in lines)


def test_excerpt_is_bounded_in_count_and_width():
    text = "\n".join(f"fatal: [h{i}]: FAILED! => " + "x" * 500 for i in range(40))
    lines = devenv.failure_excerpt(text, count=5, width=80)
    assert len(lines) == 5
    assert lines[-1].startswith("fatal: [h39]")
    assert all(len(line) <= 80 for line in lines)


def test_report_prints_the_excerpts_after_the_summary(capsys):
    steps = devenv.Steps()
    steps.record("molecule test -s langfuse", False, 25.9)
    steps.excerpts["molecule test -s langfuse"] = devenv.failure_excerpt(LOG)
    assert steps.report() == 1
    out = capsys.readouterr().out
    summary = out.index("FAIL     25.9s  molecule test -s langfuse")
    why = out.index("==> why molecule test -s langfuse failed")
    assert summary < why < out.index("UNREACHABLE!", why) < out.index("==> 0 passed, 1 failed")
