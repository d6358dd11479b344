"""Backups in the full stack (lab settings): the S3 stand-in playing MinIO on the first app host
is the target (HTTPS through the test-only nginx front). Written for molecule/default; NOT run
by the backup helper that wrote it (the full-stack scenario is the integrator's): molecule/backup
proves each behaviour on a small topology, this file proves the wiring of the lab's settings.
ClickHouse backups are off in the lab (the stand-in cannot execute BACKUP)."""
import json
import re
import uuid
from pathlib import Path

import yaml
from conftest import address, recap, run_playbook

PG1, PG2, APP1 = "default-pg1", "default-pg2", "default-app1"
RESTORE = "../../playbooks/restore.yml"
VAULT = Path(__file__).resolve().parents[3] / "inventories" / "lab" / "group_vars" / "all" / "vault.yml"


def psql(host, query, db="langfuse", port=5432):
    res = host.run("runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -h /var/run/postgresql -p %s -d %s -c %s",
                   str(port), db, query)
    assert res.rc == 0, res.stderr
    return res.stdout.strip()


def prom(host, job):
    text = host.file(f"/var/lib/prometheus/node-exporter/llmops_backup_{job}.prom").content_string
    return {m: float(v) for m, v in re.findall(r"^llmops_backup_(\w+)\{job=\"%s\"\} (\S+)$" % job, text, re.M)}


def passed(result):
    counts = recap(result.stdout)
    return result.returncode == 0 and counts and all(c["failed"] == 0 for c in counts.values())


def test_timers_on_both_database_hosts_and_bucket_copy_on_app1(hosts):
    for name in (PG1, PG2):
        for timer in ("logical", "pgbackrest-full", "pgbackrest-diff"):
            assert hosts[name].service(f"llmops-backup-{timer}.timer").is_enabled
    assert hosts[APP1].service("llmops-backup-buckets.timer").is_enabled
    assert not hosts[APP1].file("/etc/systemd/system/llmops-backup-clickhouse.timer").exists


def test_site_archives_into_pgbackrest_and_took_a_full_backup(hosts):
    pg1 = hosts[PG1]
    assert psql(pg1, "SHOW archive_mode", "postgres") == "on"
    info = json.loads(pg1.check_output("runuser -u postgres -- pgbackrest --stanza=langfuse --output=json info"))
    assert info[0]["status"]["code"] == 0 and info[0]["backup"][0]["type"] == "full"


def test_backup_playbook_runs_every_job(hosts):
    result = run_playbook("../../playbooks/backup.yml")
    assert passed(result), result.stdout[-3000:]
    assert prom(hosts[PG1], "logical")["last_exit_status"] == 0
    assert prom(hosts[PG2], "logical")["last_run_skipped"] == 1
    assert prom(hosts[APP1], "buckets")["last_exit_status"] == 0


def test_logical_restore_of_the_langfuse_database_matches_the_dump(hosts):
    scratch = f"lab_restore_{uuid.uuid4().hex[:8]}"
    result = run_playbook(RESTORE, "-e", "restore_mode=logical", "-e", f"restore_host={PG1}",
                          "-e", f"backup_restore_database={scratch}")
    assert passed(result), result.stdout[-3000:]
    # the Langfuse stand-in's tables (standin_*) came back with every row
    assert re.search(r"public\.standin_migrations\s+(\d+)\s+\1\s+yes", result.stdout), result.stdout[-3000:]


def test_pitr_to_latest_on_the_replica_host(hosts):
    pg2 = hosts[PG2]
    pg2.run("systemctl stop llmops-restore-pitr-5440; rm -rf /var/lib/postgresql/llmops-restore")
    try:
        result = run_playbook(RESTORE, "-e", "restore_mode=pitr", "-e", f"restore_host={PG2}")
        assert passed(result), result.stdout[-3000:]
        assert int(psql(pg2, "SELECT count(*) FROM standin_migrations", port=5440)) >= 1
    finally:
        pg2.run("systemctl stop llmops-restore-pitr-5440; rm -rf /var/lib/postgresql/llmops-restore")


def test_the_event_bucket_copy_holds_what_langfuse_wrote(hosts):
    """The Langfuse stand-in PUTs every ingested event under events/ of the langfuse bucket; the
    bucket job copies them to llmops-backups/buckets/events/ (read back through rclone)."""
    app1 = hosts[APP1]
    # one ingestion first (this file runs before test_default.py's), straight to app1's web
    keys = yaml.safe_load(VAULT.read_text())
    auth = f"{keys['vault_langfuse_init_project_public_key']}:{keys['vault_langfuse_init_project_secret_key']}"
    batch = {"batch": [{"id": str(uuid.uuid4()), "type": "trace-create", "timestamp": "2026-11-26T12:00:00.000Z",
                        "body": {"id": str(uuid.uuid4()), "name": "molecule-default-backup"}}]}
    web = f"http://{address(app1)}:3000/api/public/ingestion"
    out = app1.run("curl -sS -o /dev/null -w '%%{http_code}' -u %s -H 'Content-Type: application/json' --data %s %s",
                   auth, json.dumps(batch), web)
    assert out.stdout.strip() == "207", (out.stdout, out.stderr)
    assert app1.run("systemctl start llmops-backup-buckets.service").rc == 0
    listing = app1.check_output("runuser -u llmops-backup -- rclone --config /etc/llmops-backup/rclone-llmops-backup.conf "
                                "--ca-cert /etc/ssl/llmops-test-ca.pem lsf -R target:llmops-backups/buckets/events/")
    source = app1.check_output("runuser -u llmops-backup -- rclone --config /etc/llmops-backup/rclone-llmops-backup.conf "
                               "lsf -R source:langfuse/events/")
    assert source.split() and set(source.split()) <= set(listing.split())
