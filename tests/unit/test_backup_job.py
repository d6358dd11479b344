"""Pure logic of the backup role's job program (roles/backup/files/llmops_backup.py): retention,
backup names, the textfile metrics and the row-count comparison. The jobs themselves (pg_dump,
gpg, rclone, pgBackRest against the S3 stand-in) run in molecule/backup."""
import datetime
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("llmops_backup", ROOT / "roles/backup/files/llmops_backup.py")
job = importlib.util.module_from_spec(spec)
spec.loader.exec_module(job)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 1, 2, 0, 0, tzinfo=UTC)


def names(*days_ago):
    return [job.backup_name("langfuse", NOW - datetime.timedelta(days=d)) for d in days_ago]


def test_names_carry_their_utc_time():
    name = job.backup_name("langfuse", NOW)
    assert name == "langfuse-20261201T020000Z"
    assert job.name_time(name, "langfuse") == NOW
    assert job.name_time("langfuse-restore-20261201T020000Z", "langfuse") is None
    assert job.name_time("other-20261201T020000Z", "langfuse") is None


def test_retention_by_count_keeps_the_newest():
    all_names = names(0, 1, 2, 3, 4)
    assert job.expired(all_names, "langfuse", 3, 0, NOW) == sorted(names(3, 4))


def test_retention_by_age_and_count_together():
    all_names = names(0, 1, 10, 40, 50)
    # age 35 days removes 40 and 50; count 4 would remove 50 only
    assert job.expired(all_names, "langfuse", 4, 35, NOW) == sorted(names(40, 50))
    assert job.expired(all_names, "langfuse", 2, 35, NOW) == sorted(names(10, 40, 50))


def test_retention_never_removes_the_newest_or_foreign_names():
    old = names(100, 200)
    foreign = ["README", "langfuse-latest", "other-20200101T000000Z"]
    assert job.expired(old + foreign, "langfuse", 1, 1, NOW) == names(200)
    assert job.expired(old, "langfuse", 0, 0, NOW) == []


def test_metrics_render_and_parse_round_trip():
    text = job.render_metrics("logical", {"last_run_timestamp_seconds": 1764554400.5, "last_exit_status": 0,
                                          "last_size_bytes": 12345, "last_run_skipped": 0})
    assert '# TYPE llmops_backup_last_exit_status gauge' in text
    assert 'llmops_backup_last_size_bytes{job="logical"} 12345' in text
    assert job.parse_metrics(text) == {"last_run_timestamp_seconds": 1764554400.5, "last_exit_status": 0.0,
                                       "last_size_bytes": 12345.0, "last_run_skipped": 0.0}


@pytest.fixture()
def cfg(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "state").mkdir()
    return {"metrics_dir": str(tmp_path / "metrics"), "state_dirs": {"logical": str(tmp_path / "state")}}


def finish(cfg, monkeypatch, tmp_path, exit_status, result, invocation="run1"):
    """What systemd's ExecStopPost gives the metrics writer (INVOCATION_ID, EXIT_STATUS,
    SERVICE_RESULT); returns the metrics it wrote."""
    monkeypatch.setenv("INVOCATION_ID", invocation)
    monkeypatch.setenv("EXIT_STATUS", exit_status)
    monkeypatch.setenv("SERVICE_RESULT", result)
    job.write_metrics(cfg, "logical")
    return job.parse_metrics((tmp_path / "metrics" / "llmops_backup_logical.prom").read_text())


def test_metrics_writer_success_then_failure_keeps_the_last_success(cfg, monkeypatch, tmp_path):
    (tmp_path / "state" / "logical.json").write_text('{"invocation": "run1", "started": 1, "size": 4096}')
    first = finish(cfg, monkeypatch, tmp_path, "0", "success")
    assert first["last_exit_status"] == 0 and first["last_size_bytes"] == 4096
    assert first["last_success_timestamp_seconds"] == first["last_run_timestamp_seconds"]
    # the next run dies before it writes its state: failed, the previous success is kept
    second = finish(cfg, monkeypatch, tmp_path, "1", "exit-code", invocation="run2")
    assert second["last_exit_status"] == 1
    assert second["last_success_timestamp_seconds"] == first["last_success_timestamp_seconds"]
    assert second["last_duration_seconds"] == 0
    assert not list((tmp_path / "metrics").glob(".*")), "no temporary file left behind"


def test_metrics_writer_marks_standby_runs_skipped_and_timeouts_failed(cfg, monkeypatch, tmp_path):
    (tmp_path / "state" / "logical.json").write_text('{"invocation": "r", "started": 1, "skipped": true}')
    values = finish(cfg, monkeypatch, tmp_path, "0", "success", invocation="r")
    assert values["last_run_skipped"] == 1 and "last_success_timestamp_seconds" not in values
    assert finish(cfg, monkeypatch, tmp_path, "TERM", "timeout", invocation="r")["last_exit_status"] == 1


def test_row_count_comparison_table():
    rows = job.compare_counts({"public.a": 3, "public.b": 1}, {"public.a": 3, "public.c": 0})
    assert [(r["table"], r["ok"]) for r in rows] == [("public.a", True), ("public.b", False), ("public.c", False)]
    text = job.format_table(rows)
    assert text.splitlines()[0].split() == ["table", "source", "restored", "ok"]
    assert "public.b" in text and "NO" in text


def test_clickhouse_literals_escape_quotes():
    assert job.ch_literal("a'b\\c") == "'a\\'b\\\\c'"
    target = job.clickhouse_target({"s3_url": "https://s3:9443/b/clickhouse/"},
                                   {"s3_access_key": "k", "s3_secret_key": "s'x"}, "n")
    assert target == "S3('https://s3:9443/b/clickhouse/n/', 'k', 's\\'x')"


def test_an_unreachable_repository_fails_at_once_and_names_the_endpoint():
    import socket
    import time

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(job.JobError, match=rf"the pgBackRest repository at 127.0.0.1:{port} cannot be reached"):
        job.check_reachable("127.0.0.1", port, "the pgBackRest repository")
    assert time.monotonic() - start < 5
    with socket.socket() as server:  # and a listening one passes
        server.bind(("127.0.0.1", 0))
        server.listen()
        job.check_reachable("127.0.0.1", server.getsockname()[1], "the pgBackRest repository")
