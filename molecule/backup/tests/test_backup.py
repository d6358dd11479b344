"""Behaviour of the backup role with real clients: pg_dump/pg_restore, gpg, rclone and pgBackRest
against the S3 stand-in (moto behind a SigV4 gate, HTTPS through nginx with a test CA), boto3 to
read the bucket raw, node_exporter to read the metrics. The ClickHouse backup is wiring only
(the stand-in verifies the S3 target, then refuses: no real ClickHouse can run here)."""
import datetime
import json
import re
import time
import uuid

import pytest
import yaml
from conftest import SCENARIO_DIR, recap, run_playbook

PRIMARY, REPLICA, S3 = "backup-primary", "backup-replica", "backup-s3"
BUCKET = "llmops-backups"
LOGICAL = "postgresql/logical/"
GROUP_VARS = yaml.safe_load((SCENARIO_DIR / "molecule.yml").read_text())["provisioner"]["inventory"]["group_vars"]["all"]
SECRETS = [GROUP_VARS[k] for k in ("backup_s3_secret_key", "backup_logical_passphrase",
                                   "backup_pgbackrest_cipher_passphrase", "llmops_clickhouse_password",
                                   "llmops_postgresql_password", "postgresql_replication_password")]
KEEP_COUNT, KEEP_DAYS = GROUP_VARS["backup_logical_s3_keep_count"], GROUP_VARS["backup_logical_s3_keep_days"]
RESTORE = "../../playbooks/restore.yml"
STAMP = "%Y%m%dT%H%M%SZ"


# --------------------------------------------------------------------------- helpers
def sql(host, query, db="langfuse", port=5432):
    return host.run("runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -h /var/run/postgresql -p %s -d %s -c %s",
                    str(port), db, query)


def value(host, query, db="langfuse", port=5432):
    res = sql(host, query, db, port)
    assert res.rc == 0, res.stderr
    return res.stdout.strip()


def start(host, job):
    """Start a job's unit as its timer would; (exit code of systemctl, the job's journal)."""
    unit = f"llmops-backup-{job.replace('_', '-')}.service"
    since = host.check_output("date -u '+%Y-%m-%d %H:%M:%S'")
    res = host.run(f"systemctl start {unit}")
    journal = host.run(f"journalctl --no-pager -o cat -u {unit} --since '{since}'").stdout
    return res.rc, journal


def metrics(host, job):
    text = host.file(f"/var/lib/prometheus/node-exporter/llmops_backup_{job}.prom").content_string
    return {m: float(v) for m, v in re.findall(r"^llmops_backup_(\w+)\{job=\"%s\"\} (\S+)$" % job, text, re.M)}


def bucket(hosts, prefix=""):
    return json.loads(hosts[S3].check_output(f"s3client ls {BUCKET} {prefix}"))


def outside_pgbackrest(keys):
    return {k for k in keys if not k.startswith("pgbackrest/")}


def dumps(hosts):
    return sorted(k[len(LOGICAL):-len(".json")] for k in bucket(hosts, LOGICAL)
                  if re.fullmatch(r"langfuse-\d{8}T\d{6}Z\.json", k[len(LOGICAL):]))


def parse_time(name):
    return datetime.datetime.strptime(name.rsplit("-", 1)[1], STAMP).replace(tzinfo=datetime.timezone.utc)


def ok(result):
    counts = recap(result.stdout)
    return result.returncode == 0 and counts and all(c["failed"] == 0 and c["unreachable"] == 0
                                                     for c in counts.values())


@pytest.fixture(scope="module")
def seeded(hosts):
    """Langfuse-like rows on the primary: three tables, one in another schema."""
    primary = hosts[PRIMARY]
    value(primary, "CREATE TABLE IF NOT EXISTS traces (id serial PRIMARY KEY, name text);"
                   "CREATE TABLE IF NOT EXISTS observations (id serial PRIMARY KEY, trace int, body text);"
                   "CREATE SCHEMA IF NOT EXISTS audit; CREATE TABLE IF NOT EXISTS audit.events (id bigint);"
                   "TRUNCATE traces, observations, audit.events;"
                   "INSERT INTO traces (name) SELECT 'trace-' || g FROM generate_series(1, 250) g;"
                   "INSERT INTO observations (trace, body) SELECT g % 250, repeat('x', 200) FROM generate_series(1, 1000) g;"
                   "INSERT INTO audit.events SELECT g FROM generate_series(1, 37) g;")
    return {"public.traces": 250, "public.observations": 1000, "audit.events": 37}


# --------------------------------------------------------------------------- timers and configuration
@pytest.mark.parametrize("name", [PRIMARY, REPLICA])
def test_timers_on_primary_and_replica(hosts, name):
    host = hosts[name]
    for timer, calendar in (("logical", "*-*-* 02:00:00"), ("pgbackrest-full", "Sun *-*-* 01:00:00"),
                            ("pgbackrest-diff", "Mon..Sat *-*-* 01:00:00")):
        unit = f"llmops-backup-{timer}.timer"
        assert host.service(unit).is_enabled and host.service(unit).is_running, unit
        shown = host.check_output(f"systemctl show {unit} -p TimersCalendar -p RandomizedDelayUSec")
        assert calendar.split()[-1] in shown and "RandomizedDelayUSec=30min" in shown, shown


def test_timers_on_the_datastore_host(hosts):
    for timer in ("buckets", "clickhouse"):
        assert hosts[S3].service(f"llmops-backup-{timer}.timer").is_enabled


def test_archive_settings_come_from_the_postgresql_role(hosts):
    primary = hosts[PRIMARY]
    assert value(primary, "SHOW archive_mode", "postgres") == "on"
    assert value(primary, "SHOW archive_command", "postgres") == "pgbackrest --stanza=langfuse archive-push %p"
    assert value(primary, "SHOW archive_timeout", "postgres") == "1min"
    conf = primary.file("/etc/postgresql/15/main/conf.d/60-llmops.conf").content_string
    assert "archive_mode = 'on'" in conf
    assert not primary.file("/etc/postgresql/15/main/postgresql.conf").contains("pgbackrest")


def test_secret_files_are_private(hosts):
    primary = hosts[PRIMARY]
    for path, mode in (("/etc/llmops-backup/dump.passphrase", 0o600), ("/etc/llmops-backup/rclone-postgres.conf", 0o600),
                       ("/etc/pgbackrest.conf", 0o640)):
        f = primary.file(path)
        assert f.user == "postgres" and f.mode == mode, path
    f = hosts[S3].file("/etc/llmops-backup/clickhouse.json")
    assert f.user == "llmops-backup" and f.mode == 0o600
    assert not any(s in primary.file("/etc/llmops-backup/config.json").content_string for s in SECRETS)


def test_pgbackrest_stanza_has_a_full_backup_and_checks(hosts):
    primary = hosts[PRIMARY]
    res = primary.run("runuser -u postgres -- pgbackrest --stanza=langfuse check")
    assert res.rc == 0, res.stderr
    info = json.loads(primary.check_output("runuser -u postgres -- pgbackrest --stanza=langfuse --output=json info"))
    assert info[0]["status"]["code"] == 0
    assert [b["type"] for b in info[0]["backup"]][:1] == ["full"]
    assert info[0]["cipher"] == "aes-256-cbc"


# --------------------------------------------------------------------------- logical dump and restore
def test_logical_backup_drop_table_restore_counts_equal(hosts, seeded):
    primary = hosts[PRIMARY]
    before = dumps(hosts)
    rc, journal = start(primary, "logical")
    assert rc == 0, journal
    new = sorted(set(dumps(hosts)) - set(before))
    assert len(new) == 1, journal
    manifest = json.loads(primary.file(f"/var/backups/llmops/logical/{new[0]}.json").content_string)
    assert {k: manifest["tables"][k] for k in seeded} == seeded
    value(primary, "DROP TABLE observations")
    scratch = f"restore_{uuid.uuid4().hex[:8]}"
    result = run_playbook(RESTORE, "-e", "restore_mode=logical", "-e", f"restore_host={PRIMARY}",
                          "-e", f"backup_restore_name={new[0]}", "-e", f"backup_restore_database={scratch}")
    print(result.stdout[-3000:])
    assert ok(result), result.stdout[-3000:]
    assert re.search(r"public\.observations\s+1000\s+1000\s+yes", result.stdout)
    for table, count in seeded.items():
        assert value(primary, f"SELECT count(*) FROM {table}", scratch) == str(count)
    seconds = re.search(r"in\s+([0-9.]+)\s+s\s+\((\d+)\s+bytes\s+encrypted\)", result.stdout)
    assert seconds, result.stdout[-2000:]
    print(f"MEASURED logical restore: {seconds.group(1)} s for a {seconds.group(2)}-byte dump")
    value(primary, "CREATE TABLE observations (id serial PRIMARY KEY, trace int, body text)")


def test_a_changed_byte_is_refused_before_any_restore(hosts):
    primary = hosts[PRIMARY]
    name = dumps(hosts)[-1]
    path = f"/var/backups/llmops/logical/{name}.dump.gpg"
    size = int(primary.check_output(f"stat -c %s {path}"))
    offset = size // 2
    original = primary.check_output(f"od -An -tu1 -j{offset} -N1 {path}").strip()
    flip = "\\%03o" % (int(original) ^ 0x01)
    primary.check_output(f"printf '{flip}' | dd of={path} bs=1 seek={offset} count=1 conv=notrunc status=none")
    scratch = f"corrupt_{uuid.uuid4().hex[:8]}"
    try:
        result = run_playbook(RESTORE, "-e", "restore_mode=logical", "-e", f"restore_host={PRIMARY}",
                              "-e", f"backup_restore_name={name}", "-e", "backup_restore_source=local",
                              "-e", f"backup_restore_database={scratch}")
        assert result.returncode != 0
        assert "checksum mismatch" in result.stdout and "nothing was restored" in result.stdout
        assert value(primary, f"SELECT count(*) FROM pg_database WHERE datname = '{scratch}'", "postgres") == "0"
    finally:
        restore = "\\%03o" % int(original)
        primary.check_output(f"printf '{restore}' | dd of={path} bs=1 seek={offset} count=1 conv=notrunc status=none")


def test_the_live_database_is_refused_without_force(hosts):
    result = run_playbook(RESTORE, "-e", "restore_mode=logical", "-e", f"restore_host={PRIMARY}",
                          "-e", "backup_restore_database=langfuse")
    assert result.returncode != 0 and "live Langfuse database" in result.stdout


def test_backups_in_the_bucket_are_unreadable_without_the_passphrase(hosts, seeded):
    s3 = hosts[S3]
    name = dumps(hosts)[-1]
    raw = s3.run(f"s3client get {BUCKET} {LOGICAL}{name}.dump.gpg | od -An -tx1 -N2").stdout.split()
    # an OpenPGP symmetrically encrypted session key packet (tag 3), not pg_dump's "PGDMP"
    assert raw and int(raw[0], 16) in (0x8C, 0xC3), raw
    assert s3.run(f"s3client get {BUCKET} {LOGICAL}{name}.dump.gpg | grep -c -a -e PGDMP -e trace-1").stdout.strip() == "0"
    wrong = s3.run(f"s3client get {BUCKET} {LOGICAL}{name}.dump.gpg | gpg --batch --pinentry-mode loopback "
                   "--passphrase not-the-passphrase --decrypt -o /dev/null")
    assert wrong.rc != 0 and "decryption failed" in wrong.stderr.lower()
    # pgBackRest's repository cipher: every file is OpenSSL-encrypted ("Salted__"), WAL included
    keys = bucket(hosts, "pgbackrest/")
    wal = [k for k in keys if re.search(r"/archive/langfuse/15-1/.*/[0-9A-F]{24}-[0-9a-f]{40}", k)]
    data = [k for k in keys if "/pg_data/" in k]
    assert wal and data
    for key in (wal[0], data[0], "pgbackrest/backup/langfuse/backup.info"):
        assert s3.run(f"s3client get {BUCKET} {key} | head -c 8").stdout == "Salted__", key


# --------------------------------------------------------------------------- failure, retention, metrics
def test_wrong_credentials_fail_the_unit_keep_older_backups_and_say_failed(hosts):
    primary = hosts[PRIMARY]
    conf = "/etc/llmops-backup/rclone-postgres.conf"
    bucket_before = dumps(hosts)
    local_before = primary.check_output("ls /var/backups/llmops/logical").split()
    last_success = metrics(primary, "logical")["last_success_timestamp_seconds"]
    primary.check_output(f"cp -p {conf} {conf}.good && sed -i 's/^secret_access_key = .*/secret_access_key = wrong-secret/' {conf}")
    try:
        rc, journal = start(primary, "logical")
    finally:
        primary.check_output(f"mv {conf}.good {conf}")
    assert rc != 0
    assert "SignatureDoesNotMatch" in journal or "403" in journal, journal
    values = metrics(primary, "logical")
    assert values["last_exit_status"] == 1
    assert values["last_success_timestamp_seconds"] == last_success
    assert primary.service("llmops-backup-logical.service").is_running is False
    assert "failed" in primary.run("systemctl is-failed llmops-backup-logical.service").stdout
    assert dumps(hosts) == bucket_before
    assert set(local_before) <= set(primary.check_output("ls /var/backups/llmops/logical").split())


def test_retention_removes_exactly_what_is_past_the_limits(hosts):
    s3, primary = hosts[S3], hosts[PRIMARY]
    now = datetime.datetime.now(datetime.timezone.utc)
    seeded = [f"langfuse-{(now - datetime.timedelta(days=d, hours=1)).strftime(STAMP)}" for d in (2, 29, 31, 40)]
    foreign = [f"{LOGICAL}notes.txt", f"{LOGICAL}langfuse_restore-20200101T000000Z.dump.gpg",
               "elsewhere/langfuse-20200101T000000Z.dump.gpg"]
    for name in seeded:
        for suffix in (".dump.gpg", ".json"):
            s3.check_output(f"echo old | s3client put {BUCKET} {LOGICAL}{name}{suffix}")
    for key in foreign:
        s3.check_output(f"echo other | s3client put {BUCKET} {key}")
    # pgBackRest's repository is left out: PostgreSQL archives a WAL segment whenever archive_timeout
    # (1 min) passes, so it can grow during this job on its own clock
    before = outside_pgbackrest(bucket(hosts))
    rc, journal = start(primary, "logical")
    assert rc == 0, journal
    after = outside_pgbackrest(bucket(hosts))
    new = list(after - before)
    assert len(new) == 2, new  # the new dump and its manifest
    # the rule, independently: newest first; the newest always stays; beyond the count or the age goes
    newest_first = sorted(dumps(hosts) + [k[len(LOGICAL):-5] for k in before - after if k.endswith(".json")],
                          key=parse_time, reverse=True)
    expected = {n for i, n in enumerate(newest_first)
                if i > 0 and (i >= KEEP_COUNT or now - parse_time(n) > datetime.timedelta(days=KEEP_DAYS))}
    removed = before - after
    assert removed == {f"{LOGICAL}{n}{s}" for n in expected for s in (".dump.gpg", ".json")}
    assert set(foreign) <= after
    assert len(dumps(hosts)) == KEEP_COUNT
    assert "langfuse-" in journal and "retention: removed" in journal


def test_node_exporter_serves_the_job_metrics(hosts):
    out = hosts[PRIMARY].check_output("curl -s http://localhost:9100/metrics")
    for metric in ("last_success_timestamp_seconds", "last_exit_status", "last_duration_seconds", "last_size_bytes"):
        assert re.search(r'^llmops_backup_%s\{job="logical"\} ' % metric, out, re.M), metric
    assert re.search(r'^llmops_backup_last_exit_status\{job="pgbackrest_full"\} 0$', out, re.M)
    assert float(re.search(r'^llmops_backup_last_size_bytes\{job="logical"\} (\S+)$', out, re.M).group(1)) > 1000


# --------------------------------------------------------------------------- PITR
def test_point_in_time_restore_on_a_fresh_data_directory(hosts):
    primary, replica = hosts[PRIMARY], hosts[REPLICA]
    value(primary, "CREATE TABLE IF NOT EXISTS pitr (v text, at timestamptz DEFAULT clock_timestamp())")
    value(primary, "INSERT INTO pitr (v) VALUES ('A')")
    target = value(primary, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(1.5)
    value(primary, "INSERT INTO pitr (v) VALUES ('B')")
    # the WAL with B's commit must be in the archive for recovery to find the point after T
    assert primary.run("runuser -u postgres -- pgbackrest --stanza=langfuse check").rc == 0
    refused = run_playbook(RESTORE, "-e", "restore_mode=pitr", "-e", f"restore_host={PRIMARY}",
                           "-e", f"backup_restore_pitr_target='{target}'")
    assert refused.returncode != 0 and "runs the PostgreSQL primary" in refused.stdout
    directory = "/var/lib/postgresql/llmops-restore"
    replica.run(f"systemctl stop llmops-restore-pitr-5440; rm -rf {directory}")
    try:
        result = run_playbook(RESTORE, "-e", "restore_mode=pitr", "-e", f"restore_host={REPLICA}",
                              "-e", f"backup_restore_pitr_target='{target}'")
        print(result.stdout[-3000:])
        assert ok(result), result.stdout[-4000:]
        assert value(replica, "SELECT string_agg(v, ',' ORDER BY v) FROM pitr", port=5440) == "A"
        assert value(replica, "SELECT pg_is_in_recovery()", "postgres", port=5440) == "f"
        # the host's own standby was not touched
        assert value(replica, "SELECT pg_is_in_recovery()", "postgres") == "t"
        report = re.search(r"took\s+([0-9.]+)\s+s;\s+data\s+directory\s+\S+:\s+(\d+)\s+bytes", result.stdout)
        assert report, result.stdout[-2000:]
        print(f"MEASURED PITR restore: {report.group(1)} s, data directory {report.group(2)} bytes")
    finally:
        replica.run(f"systemctl stop llmops-restore-pitr-5440; rm -rf {directory}")


# --------------------------------------------------------------------------- buckets and ClickHouse
def test_bucket_copy_copies_events_and_media(hosts):
    s3 = hosts[S3]
    marker = uuid.uuid4().hex
    s3.check_output(f"echo '{{\"id\": \"{marker}\"}}' | s3client put langfuse events/p1/{marker}.json")
    s3.check_output(f"echo media-{marker} | s3client put langfuse media/p1/{marker}.png")
    rc, journal = start(s3, "buckets")
    assert rc == 0, journal
    assert marker in s3.check_output(f"s3client get {BUCKET} buckets/events/p1/{marker}.json")
    assert s3.check_output(f"s3client get {BUCKET} buckets/media/p1/{marker}.png") == f"media-{marker}"
    assert metrics(s3, "buckets")["last_exit_status"] == 0
    # deleted at the source, kept in the copy (copy, not sync)
    s3.check_output(f"s3client rm langfuse events/p1/{marker}.json")
    assert start(s3, "buckets")[0] == 0
    assert f"buckets/events/p1/{marker}.json" in bucket(hosts, "buckets/")


def test_clickhouse_backup_wiring_statement_credentials_target(hosts):
    """The stand-in parses the BACKUP statement, checks the S3 target with the given credentials,
    then refuses (code 48): the statement, the credentials and the target are right; a real
    backup is NOT tested here."""
    s3 = hosts[S3]
    since = s3.check_output("date -u '+%Y-%m-%d %H:%M:%S'")
    rc, journal = start(s3, "clickhouse")
    assert rc != 0
    assert "Code: 48" in journal and "bucket reachable and credentials accepted" in journal, journal
    standin = s3.check_output(f"journalctl --no-pager -o cat -u llmops-clickhouse-standin --since '{since}'")
    assert re.search(r"BACKUP DATABASE `default` TO S3\('https://backup-s3:9443/llmops-backups/clickhouse/"
                     r"clickhouse-default-\d{8}T\d{6}Z/', 'backup-test-key', '\[HIDDEN\]'\): S3 target verified", standin)
    assert not any(s in standin + journal for s in SECRETS)
    assert metrics(s3, "clickhouse")["last_exit_status"] == 1
    result = run_playbook(RESTORE, "-e", "restore_mode=clickhouse", "-e", f"restore_host={S3}",
                          "-e", "backup_restore_name=clickhouse-default-20261201T033000Z")
    assert result.returncode != 0 and "Code: 48" in result.stdout


# --------------------------------------------------------------------------- upgrade, idempotence, secrets
def test_upgrade_stops_before_anything_changes_when_the_backup_fails(hosts):
    s3 = hosts[S3]
    s3.check_output("systemctl stop nginx")  # the backup target is unreachable
    try:
        result = run_playbook("../../playbooks/upgrade.yml")
        assert result.returncode != 0
        assert "PLAY [Upgrade - pre-upgrade backup" in result.stdout
        assert "Backup jobs failed on backup-primary" in result.stdout
        # the pgBackRest job checks the endpoint first instead of retrying each request for io-timeout
        assert "the pgBackRest repository at backup-s3:9443 cannot be reached" in " ".join(result.stdout.split())
        assert "PLAY [Upgrade - check the inventory" not in result.stdout
        assert "PLAY [Upgrade - stage" not in result.stdout
        # (--limit: backup-s3 plays the app host here but has no Langfuse to upgrade)
        skipped = run_playbook("../../playbooks/upgrade.yml", "--limit", "postgres_primary:postgres_replica",
                               "-e", "llmops_upgrade_skip_backup=true")
        assert "NO backup is taken before this upgrade" in skipped.stdout
        assert "PLAY [Upgrade - check the inventory" in skipped.stdout
    finally:
        s3.check_output("systemctl start nginx")
    # with the target back the database hosts' pre-upgrade backup passes and the upgrade goes on
    passed = run_playbook("../../playbooks/upgrade.yml", "--limit", "postgres_primary:postgres_replica")
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert "PLAY [Upgrade - check the inventory" in passed.stdout


def test_check_mode_on_the_converged_hosts_is_clean():
    # (the plain second run is molecule's idempotence step: the whole converge, this play included)
    result = run_playbook("backup.yml", "--check", "--diff")
    assert ok(result), result.stdout[-3000:]
    assert all(c["changed"] == 0 for c in recap(result.stdout).values()), recap(result.stdout)


def test_no_secret_in_verbose_diff_output():
    # a changed region rewrites the secret files (rclone.conf, pgbackrest.conf) and the settings
    result = run_playbook("backup.yml", "-v", "--diff", "-e", "backup_logical_s3_keep_count=5",
                          "-e", "backup_s3_region=eu-test-1")
    assert ok(result), result.stdout[-3000:]
    assert sum(c["changed"] for c in recap(result.stdout).values()) >= 3
    leaked = [s for s in SECRETS if s in result.stdout]
    assert not leaked


def test_no_secret_in_any_process_command_line_or_environment_during_backups(hosts):
    primary = hosts[PRIMARY]
    sampler = (
        "import glob,json,subprocess,time\n"
        "seen=set()\n"
        "subprocess.run(['systemctl','start','--no-block','llmops-backup-logical.service','llmops-backup-pgbackrest-incr.service'])\n"
        "deadline=time.time()+120\n"
        "while time.time()<deadline:\n"
        "    for d in glob.glob('/proc/[0-9]*'):\n"
        "        try:\n"
        "            seen.add(open(d+'/cmdline','rb').read().replace(b'\\0',b' ').decode(errors='replace'))\n"
        "            seen.add(open(d+'/environ','rb').read().replace(b'\\0',b' ').decode(errors='replace'))\n"
        "        except OSError:\n"
        "            pass\n"
        "    units=['llmops-backup-logical.service','llmops-backup-pgbackrest-incr.service']\n"
        "    states=subprocess.run(['systemctl','is-active']+units,capture_output=True,text=True).stdout.split()\n"
        "    if all(s in ('inactive','failed') for s in states) and len(seen)>50:\n"
        "        break\n"
        "    time.sleep(0.02)\n"
        "print(json.dumps(sorted(seen)))\n"
    )
    primary.check_output("cat > /tmp/sampler.py <<'EOF'\n%s\nEOF" % sampler)
    seen = json.loads(primary.check_output("python3 /tmp/sampler.py"))
    assert any("pg_dump" in s for s in seen) and any("pgbackrest" in s and "backup" in s for s in seen), len(seen)
    assert any("gpg" in s and "--passphrase-file" in s for s in seen)
    leaked = [s for s in SECRETS if any(s in line for line in seen)]
    assert not leaked
    assert metrics(primary, "pgbackrest_incr")["last_exit_status"] == 0


# --------------------------------------------------------------------------- standby no-op, then promotion (last)
def test_the_replica_run_is_a_logged_no_op(hosts):
    replica = hosts[REPLICA]
    before = dumps(hosts)
    for job in ("logical", "pgbackrest_diff"):
        rc, journal = start(replica, job)
        assert rc == 0 and "pg_is_in_recovery() is true" in journal and "no-op" in journal, journal
        assert metrics(replica, job)["last_run_skipped"] == 1
    assert dumps(hosts) == before


def test_after_promotion_the_next_run_on_the_former_replica_backs_up(hosts):
    replica = hosts[REPLICA]
    assert value(replica, "SELECT pg_promote(true, 60)", "postgres") == "t"
    before = dumps(hosts)
    rc, journal = start(replica, "logical")
    assert rc == 0, journal
    new = sorted(set(dumps(hosts)) - set(before))
    assert len(new) == 1
    manifest = json.loads(replica.file(f"/var/backups/llmops/logical/{new[0]}.json").content_string)
    assert manifest["host"] == REPLICA
    values = metrics(replica, "logical")
    assert values["last_run_skipped"] == 0 and values["last_exit_status"] == 0
