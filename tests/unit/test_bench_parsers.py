"""make bench's parsers (tests/harness/bench.py): the slowest-task list reads profile_tasks'
summary whatever the length of a task's name (a long name leaves few or no padding dashes)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "harness"))
import bench  # noqa: E402  pylint: disable=wrong-import-position

SUMMARY = """\
TASK [Show the end] ************************************************************
ok: [lb] => (item=done -- 1.00s)
Thursday 03 December 2026  16:03:46 +0000 (0:00:00.030)       0:05:36.094 *****
===============================================================================
llmops.langfuse.common : Install the base packages and those of this host's other roles -- 98.78s
llmops.langfuse.langfuse : Copy the archives with a missing image ------ 14.98s
Gathering Facts --------------------------------------------------------- 3.22s
llmops.langfuse.langfuse : Start web alone on one host (a new release - it migrates the databases) 1203.50s
llmops.langfuse.common : Refresh the apt package index when it is stale - 100.10s
"""


def test_every_summary_line_is_read_slowest_first():
    assert bench._slowest(SUMMARY) == [  # pylint: disable=protected-access
        "1203.50s  llmops.langfuse.langfuse : Start web alone on one host (a new release - it migrates the databases)",
        " 100.10s  llmops.langfuse.common : Refresh the apt package index when it is stale",
        "  98.78s  llmops.langfuse.common : Install the base packages and those of this host's other roles",
        "  14.98s  llmops.langfuse.langfuse : Copy the archives with a missing image",
        "   3.22s  Gathering Facts",
    ]


def test_a_timed_line_outside_the_summary_is_not_a_task():
    assert not bench._slowest("ok: [lb] => (item=done -- 1.00s)\n")  # pylint: disable=protected-access
