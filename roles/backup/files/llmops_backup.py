"""Backup jobs of llmops.langfuse (installed by the backup role; run by systemd units).

    llmops_backup.py logical                  pg_dump -Fc, encrypted (gpg), checksummed, uploaded
    llmops_backup.py pgbackrest full|diff|incr
    llmops_backup.py buckets                  copy the Langfuse buckets to the backup target
    llmops_backup.py clickhouse               BACKUP DATABASE ... TO S3(...)
    llmops_backup.py metrics JOB              (ExecStopPost, as root) write JOB's *.prom file
    llmops_backup.py restore-logical --name NAME|latest --database DB [--source s3|local] [--force]
    llmops_backup.py restore-clickhouse --name NAME|latest --database DB

Settings come from /etc/llmops-backup/config.json (no secrets). Secrets are only ever read from
files the role writes with mode 0600/0640 (the gpg passphrase file, rclone.conf,
clickhouse.json, pgBackRest's own configuration): never from the command line or the
environment, so they appear in no process list.

The PostgreSQL jobs run where pg_is_in_recovery() is false at that moment; on a standby a run is
a logged no-op (the metrics say skipped), so the same timers can be installed on every database
host and follow a promotion. A failed upload exits non-zero and deletes nothing.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CONFIG = Path(os.environ.get("LLMOPS_BACKUP_CONFIG", "/etc/llmops-backup/config.json"))
STAMP = "%Y%m%dT%H%M%SZ"
DUMP_SUFFIX = ".dump.gpg"
MANIFEST_SUFFIX = ".json"
METRICS = (
    ("last_run_timestamp_seconds", "Unix time the job last ran (finished)."),
    ("last_success_timestamp_seconds", "Unix time of the job's last successful backup (not a skipped run)."),
    ("last_exit_status", "Exit status of the last run (0 = success)."),
    ("last_duration_seconds", "Duration of the last run."),
    ("last_size_bytes", "Size of what the last successful run stored (bytes)."),
    ("last_run_skipped", "1 when the last run was a no-op (standby), else 0."),
)


class JobError(Exception):
    """A failure with a message for the journal; the job exits 1."""


def log(msg: str) -> None:
    print(msg, flush=True)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# --------------------------------------------------------------------------- pure helpers
def backup_name(prefix: str, when: datetime.datetime) -> str:
    return f"{prefix}-{when.strftime(STAMP)}"


def name_time(name: str, prefix: str) -> datetime.datetime | None:
    """The UTC time encoded in a backup name made by backup_name(), else None."""
    match = re.fullmatch(re.escape(prefix) + r"-(\d{8}T\d{6}Z)", name)
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), STAMP).replace(tzinfo=datetime.timezone.utc)


def expired(names: list[str], prefix: str, keep_count: int, keep_days: int,
            now: datetime.datetime) -> list[str]:
    """Names past the retention limits, oldest first. A backup is removed when it is not among
    the newest keep_count (0: no count limit) or older than keep_days (0: no age limit); the
    newest backup is always kept, and names that are not backups of this prefix never match."""
    dated = sorted(((name_time(n, prefix), n) for n in set(names) if name_time(n, prefix)), reverse=True)
    out = []
    for index, (when, name) in enumerate(dated):
        if index == 0:
            continue
        too_many = keep_count > 0 and index >= keep_count
        too_old = keep_days > 0 and now - when > datetime.timedelta(days=keep_days)
        if too_many or too_old:
            out.append(name)
    return sorted(out)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def render_metrics(job: str, values: dict[str, float]) -> str:
    lines = []
    for metric, help_text in METRICS:
        if metric not in values:
            continue
        full = f"llmops_backup_{metric}"
        lines += [f"# HELP {full} {help_text}", f"# TYPE {full} gauge",
                  f'{full}{{job="{job}"}} {values[metric]!r}']
    return "\n".join(lines) + "\n"


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        match = re.match(r"^llmops_backup_([a-z_]+)\{[^}]*\} (\S+)$", line)
        if match:
            out[match.group(1)] = float(match.group(2))
    return out


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file the textfile collector may read at any moment: a temporary file in the same
    directory, then rename (node_exporter never sees half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compare_counts(expected: dict[str, int], actual: dict[str, int]) -> list[dict]:
    """One row per table of either side: table, expected, restored, ok."""
    rows = []
    for table in sorted(set(expected) | set(actual)):
        rows.append({"table": table, "source": expected.get(table), "restored": actual.get(table),
                     "ok": expected.get(table) == actual.get(table)})
    return rows


def format_table(rows: list[dict]) -> str:
    width = max([len("table")] + [len(r["table"]) for r in rows])
    out = [f"{'table':<{width}}  {'source':>10}  {'restored':>10}  ok"]
    for r in rows:
        out.append(f"{r['table']:<{width}}  {str(r['source']):>10}  {str(r['restored']):>10}  "
                   f"{'yes' if r['ok'] else 'NO'}")
    return "\n".join(out)


# --------------------------------------------------------------------------- environment
def load_config() -> dict:
    with CONFIG.open() as fh:
        return json.load(fh)


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command (its argv never holds a secret) and fail with its own words."""
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, **kw)
    if res.returncode != 0:
        raise JobError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed ({res.returncode}): "
                       f"{(res.stderr or res.stdout).strip()[-2000:]}")
    return res


def rclone(cfg: dict, *args: str) -> subprocess.CompletedProcess:
    import pwd  # noqa: PLC0415
    config = cfg["rclone_config"].format(user=pwd.getpwuid(os.getuid()).pw_name)
    argv = ["rclone", "--config", config, "--retries", "2", "--low-level-retries", "3"]
    if cfg.get("ca_file"):
        argv += ["--ca-cert", cfg["ca_file"]]
    return run(argv + list(args))


def pg_connect(cfg: dict, dbname: str):
    import psycopg2  # noqa: PLC0415  (python3-psycopg2, installed with the PostgreSQL roles)
    return psycopg2.connect(host=cfg["socket_dir"], port=cfg["port"], dbname=dbname)


def in_recovery(cfg: dict) -> bool:
    conn = pg_connect(cfg, "postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def table_counts(cur) -> dict[str, int]:
    """Exact row count of every ordinary and partitioned table outside the system schemas."""
    from psycopg2 import sql  # noqa: PLC0415
    cur.execute("""
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
        ORDER BY 1, 2""")
    counts = {}
    for schema, table in cur.fetchall():
        cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        counts[f"{schema}.{table}"] = cur.fetchone()[0]
    return counts


class State:
    """What a run tells its ExecStopPost metrics writer (a JSON file owned by the job's user)."""

    def __init__(self, cfg: dict, job: str) -> None:
        self.path = Path(cfg["state_dirs"][job]) / f"{job}.json"
        self.data = {"job": job, "invocation": os.environ.get("INVOCATION_ID", ""), "started": time.time()}
        self.save()

    def save(self, **kw) -> None:
        self.data.update(kw)
        self.path.write_text(json.dumps(self.data))


# --------------------------------------------------------------------------- jobs
def job_logical(cfg: dict) -> int:
    pg = cfg["postgresql"]
    job = cfg["logical"]
    state = State(cfg, "logical")
    if in_recovery(pg):
        log("pg_is_in_recovery() is true: this host is a standby, no dump taken (no-op)")
        state.save(skipped=True)
        return 0
    now = utcnow()
    name = backup_name(job["name_prefix"], now)
    local_dir = Path(job["local_dir"])
    dump = local_dir / (name + DUMP_SUFFIX)
    manifest_path = local_dir / (name + MANIFEST_SUFFIX)
    partial = local_dir / f".{name}.partial"
    conn = pg_connect(pg, pg["database"])
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            # one snapshot for the dump and the counts: the manifest describes exactly the dump
            cur.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
            snapshot, server_version = cur.fetchone()
            counts = table_counts(cur)
            log(f"dumping {pg['database']} ({len(counts)} tables, snapshot {snapshot}) to {dump}")
            with partial.open("wb") as out:
                dumper = subprocess.Popen(
                    [pg["pg_dump"], "-Fc", f"--snapshot={snapshot}", "--host", pg["socket_dir"],
                     "--port", str(pg["port"]), "--dbname", pg["database"]],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                # symmetric AES256; the passphrase comes from a 0600 file, never from argv
                crypt = subprocess.Popen(
                    ["gpg", "--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback",
                     "--passphrase-file", job["passphrase_file"], "--symmetric", "--cipher-algo", "AES256",
                     "--compress-algo", "none", "--output", "-"],
                    stdin=dumper.stdout, stdout=out, stderr=subprocess.PIPE,
                    env=dict(os.environ, GNUPGHOME=job["gnupg_home"]))
                dumper.stdout.close()
                crypt_err = crypt.communicate()[1]
                dump_err = dumper.communicate()[1]
            if dumper.returncode != 0:
                raise JobError(f"pg_dump failed ({dumper.returncode}): {dump_err.decode(errors='replace').strip()}")
            if crypt.returncode != 0:
                raise JobError(f"gpg failed ({crypt.returncode}): {crypt_err.decode(errors='replace').strip()}")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    os.replace(partial, dump)
    manifest = {"name": name, "file": dump.name, "database": pg["database"], "created": now.isoformat(),
                "host": os.uname().nodename, "server_version": server_version, "format": "pg_dump -Fc | gpg -c",
                "size": dump.stat().st_size, "sha256": sha256_file(dump), "tables": counts}
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    log(f"dump {dump.name}: {manifest['size']} bytes, sha256 {manifest['sha256']}")
    target = job.get("s3")
    if target:
        remote = f"{target['remote']}:{target['bucket']}/{target['prefix'].strip('/')}"
        # the dump first, its manifest last: a manifest in the bucket means a complete upload
        rclone(cfg, "copyto", str(dump), f"{remote}/{dump.name}")
        rclone(cfg, "copyto", str(manifest_path), f"{remote}/{manifest_path.name}")
        log(f"uploaded to {remote}/")
        listing = json.loads(rclone(cfg, "lsjson", "--files-only", remote + "/").stdout or "[]")
        names = [e["Name"][:-len(MANIFEST_SUFFIX)] for e in listing if e["Name"].endswith(MANIFEST_SUFFIX)]
        names += [e["Name"][:-len(DUMP_SUFFIX)] for e in listing if e["Name"].endswith(DUMP_SUFFIX)]
        present = {e["Name"] for e in listing}
        for old in expired(names, job["name_prefix"], target["keep_count"], target["keep_days"], now):
            for suffix in (DUMP_SUFFIX, MANIFEST_SUFFIX):
                if old + suffix in present:
                    rclone(cfg, "deletefile", f"{remote}/{old}{suffix}")
            log(f"retention: removed {old} from {remote}/")
    local_names = [p.name[:-len(DUMP_SUFFIX)] for p in local_dir.glob("*" + DUMP_SUFFIX)]
    for old in expired(local_names, job["name_prefix"], 0, job["local_keep_days"], now):
        for suffix in (DUMP_SUFFIX, MANIFEST_SUFFIX):
            (local_dir / (old + suffix)).unlink(missing_ok=True)
        log(f"retention: removed {old} from {local_dir}")
    state.save(size=manifest["size"], name=name)
    return 0


def check_reachable(host: str, port: int, what: str, timeout: float = 10.0) -> None:
    """Fail at once when nothing accepts a TCP connection at host:port. pgBackRest retries each
    S3 request until io-timeout has passed, so an unreachable repository would otherwise cost
    that wait for every request of the backup before the job fails."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise JobError(f"{what} at {host}:{port} cannot be reached ({exc}): no backup taken") from exc


def job_pgbackrest(cfg: dict, kind: str) -> int:
    pg = cfg["postgresql"]
    job = cfg["pgbackrest"]
    state = State(cfg, f"pgbackrest_{kind}")
    if in_recovery(pg):
        log("pg_is_in_recovery() is true: this host is a standby, no pgBackRest backup taken (no-op)")
        state.save(skipped=True)
        return 0
    if job.get("endpoint"):
        check_reachable(job["endpoint"]["host"], int(job["endpoint"]["port"]), "the pgBackRest repository")
    log(f"pgBackRest {kind} backup of stanza {job['stanza']}")
    res = run(["pgbackrest", f"--stanza={job['stanza']}", f"--type={kind}", "backup"])
    log(res.stdout.strip())
    info = json.loads(run(["pgbackrest", f"--stanza={job['stanza']}", "--output=json", "info"]).stdout)
    backups = info[0].get("backup", []) if info else []
    size = backups[-1]["info"]["repository"]["delta"] if backups else 0
    log(f"pgBackRest {kind} backup {backups[-1]['label'] if backups else '?'}: {size} bytes in the repository")
    state.save(size=size)
    return 0


def job_buckets(cfg: dict) -> int:
    job = cfg["buckets"]
    state = State(cfg, "buckets")
    total = 0
    for bucket in job["buckets"]:
        source = f"{job['source_remote']}:{bucket['bucket']}/{bucket.get('prefix', '').strip('/')}".rstrip("/")
        dest = f"{job['target_remote']}:{job['target_bucket']}/{job['target_prefix'].strip('/')}/{bucket['name']}"
        # copy, not sync: an object deleted at the source stays in the backup
        log(f"copying {source} to {dest}")
        rclone(cfg, "copy", "--s3-no-check-bucket", source, dest)
        size = json.loads(rclone(cfg, "size", "--json", dest).stdout)
        log(f"{dest}: {size['count']} objects, {size['bytes']} bytes")
        total += size["bytes"]
    state.save(size=total)
    return 0


def clickhouse_query(ch: dict, creds: dict, statement: str, timeout: int) -> str:
    """POST a statement (in the body, never in the URL) with the user in headers."""
    req = urllib.request.Request(ch["url"].rstrip("/") + "/", data=statement.encode(), method="POST",
                                 headers={"X-ClickHouse-User": creds["user"], "X-ClickHouse-Key": creds["password"]})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise JobError(f"ClickHouse answered HTTP {exc.code}: {exc.read().decode(errors='replace').strip()}") from None
    except OSError as exc:
        raise JobError(f"ClickHouse at {ch['url']} is unreachable: {exc}") from None


def ch_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def clickhouse_target(ch: dict, creds: dict, name: str) -> str:
    url = f"{ch['s3_url'].rstrip('/')}/{name}/"
    return f"S3({ch_literal(url)}, {ch_literal(creds['s3_access_key'])}, {ch_literal(creds['s3_secret_key'])})"


def job_clickhouse(cfg: dict) -> int:
    ch = cfg["clickhouse"]
    state = State(cfg, "clickhouse")
    with open(ch["credentials_file"]) as fh:
        creds = json.load(fh)
    now = utcnow()
    name = backup_name(ch["name_prefix"], now)
    log(f"BACKUP DATABASE {ch['database']} TO S3('{ch['s3_url'].rstrip('/')}/{name}/', <key>, <secret>)")
    answer = clickhouse_query(ch, creds, f"BACKUP DATABASE `{ch['database']}` TO {clickhouse_target(ch, creds, name)}",
                              ch["timeout"])
    log(f"ClickHouse: {answer.strip()}")
    if "BACKUP_CREATED" not in answer:
        raise JobError(f"ClickHouse did not report BACKUP_CREATED: {answer.strip()}")
    size = 0
    backup_id = answer.split()[0]
    sized = clickhouse_query(ch, creds, f"SELECT total_size FROM system.backups WHERE id = {ch_literal(backup_id)}",
                             ch["timeout"]).strip()
    if sized.isdigit():
        size = int(sized)
    if ch.get("keep_count") or ch.get("keep_days"):
        remote = f"{ch['remote']}:{ch['bucket']}/{ch['prefix'].strip('/')}"
        listing = json.loads(rclone(cfg, "lsjson", "--dirs-only", remote + "/").stdout or "[]")
        for old in expired([e["Name"] for e in listing], ch["name_prefix"], ch["keep_count"], ch["keep_days"], now):
            rclone(cfg, "purge", f"{remote}/{old}")
            log(f"retention: removed {old} from {remote}/")
    state.save(size=size, name=name)
    return 0


def write_metrics(cfg: dict, job: str) -> int:
    """ExecStopPost: the job's outcome (systemd's EXIT_STATUS/SERVICE_RESULT) plus its state."""
    path = Path(cfg["metrics_dir"]) / f"llmops_backup_{job}.prom"
    previous = parse_metrics(path.read_text()) if path.exists() else {}
    state_path = Path(cfg["state_dirs"].get(job, "/nonexistent")) / f"{job}.json"
    state = {}
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("invocation") != os.environ.get("INVOCATION_ID", ""):
            state = {}  # a previous run's file: this run died before it wrote one
    status_text = os.environ.get("EXIT_STATUS", "")
    result = os.environ.get("SERVICE_RESULT", "")
    status = int(status_text) if status_text.isdigit() else (0 if result == "success" else 1)
    if result not in ("", "success") and status == 0:
        status = 1  # killed by a signal or a timeout
    now = time.time()
    skipped = bool(state.get("skipped")) and status == 0
    values = {
        "last_run_timestamp_seconds": round(now, 3),
        "last_exit_status": status,
        "last_duration_seconds": round(now - state["started"], 3) if "started" in state else 0.0,
        "last_run_skipped": 1 if skipped else 0,
    }
    if status == 0 and not skipped:
        values["last_success_timestamp_seconds"] = round(now, 3)
        values["last_size_bytes"] = int(state.get("size", 0))
    else:
        if "last_success_timestamp_seconds" in previous:
            values["last_success_timestamp_seconds"] = previous["last_success_timestamp_seconds"]
        values["last_size_bytes"] = int(previous.get("last_size_bytes", 0))
    write_atomic(path, render_metrics(job, values))
    return 0


# --------------------------------------------------------------------------- restores
def fetch_dump(cfg: dict, name: str, source: str, workdir: Path) -> tuple[Path, dict]:
    job = cfg["logical"]
    if source == "s3":
        target = job["s3"]
        remote = f"{target['remote']}:{target['bucket']}/{target['prefix'].strip('/')}"
        if name == "latest":
            listing = json.loads(rclone(cfg, "lsjson", "--files-only", remote + "/").stdout or "[]")
            names = sorted(e["Name"][:-len(MANIFEST_SUFFIX)] for e in listing if e["Name"].endswith(MANIFEST_SUFFIX)
                           and name_time(e["Name"][:-len(MANIFEST_SUFFIX)], job["name_prefix"]))
            if not names:
                raise JobError(f"no logical backup (manifest) found in {remote}/")
            name = names[-1]
        rclone(cfg, "copyto", f"{remote}/{name}{MANIFEST_SUFFIX}", str(workdir / (name + MANIFEST_SUFFIX)))
        rclone(cfg, "copyto", f"{remote}/{name}{DUMP_SUFFIX}", str(workdir / (name + DUMP_SUFFIX)))
        base = workdir
    else:
        base = Path(job["local_dir"])
        if name == "latest":
            names = sorted(p.name[:-len(MANIFEST_SUFFIX)] for p in base.glob("*" + MANIFEST_SUFFIX)
                           if name_time(p.name[:-len(MANIFEST_SUFFIX)], job["name_prefix"]))
            if not names:
                raise JobError(f"no logical backup (manifest) found in {base}")
            name = names[-1]
    manifest = json.loads((base / (name + MANIFEST_SUFFIX)).read_text())
    return base / (name + DUMP_SUFFIX), manifest


def restore_logical(cfg: dict, args) -> int:
    pg = cfg["postgresql"]
    started = time.monotonic()
    result = {"database": args.database, "ok": False}
    workdir = Path(tempfile.mkdtemp(prefix="llmops-restore-", dir=cfg["logical"]["work_dir"]))
    try:
        dump, manifest = fetch_dump(cfg, args.name, args.source, workdir)
        result.update(name=manifest["name"], source_database=manifest["database"], size=manifest["size"])
        # the checksum is checked before anything touches a database
        actual = sha256_file(dump)
        if actual != manifest["sha256"]:
            result["error"] = (f"checksum mismatch for {dump.name}: manifest {manifest['sha256']}, file {actual}; "
                               "nothing was restored")
            print(json.dumps(result))
            return 2
        log(f"checksum of {dump.name} verified ({actual})") if args.verbose else None
        conn = pg_connect(pg, "postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery()")
                if cur.fetchone()[0]:
                    result["error"] = "this PostgreSQL is a standby (read-only): restore into a writable server"
                    print(json.dumps(result))
                    return 2
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (args.database,))
                exists = cur.fetchone() is not None
                live = args.database == pg["database"]
                if (exists or live) and not args.force:
                    result["error"] = (f"database {args.database} exists"
                                       f"{' and is the live Langfuse database of this primary' if live else ''}; "
                                       "choose a new scratch database or force the restore")
                    print(json.dumps(result))
                    return 2
                from psycopg2 import sql  # noqa: PLC0415
                if exists:
                    cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(args.database)))
                cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(args.database)))
        finally:
            conn.close()
        crypt = subprocess.Popen(
            ["gpg", "--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback",
             "--passphrase-file", cfg["logical"]["passphrase_file"], "--decrypt", str(dump)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, GNUPGHOME=cfg["logical"]["gnupg_home"]))
        restorer = subprocess.run(
            [pg["pg_restore"], "--host", pg["socket_dir"], "--port", str(pg["port"]), "--dbname", args.database,
             "--no-owner", "--no-acl", "--exit-on-error"],
            stdin=crypt.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        crypt.stdout.close()
        crypt_err = crypt.communicate()[1]
        if crypt.returncode != 0 or restorer.returncode != 0:
            result["error"] = (f"restore into {args.database} failed (gpg {crypt.returncode}, pg_restore "
                               f"{restorer.returncode}): {(crypt_err + restorer.stderr).decode(errors='replace').strip()}; "
                               f"the scratch database {args.database} was left as it is")
            print(json.dumps(result))
            return 1
        conn = pg_connect(pg, args.database)
        try:
            with conn.cursor() as cur:
                restored = table_counts(cur)
        finally:
            conn.close()
        rows = compare_counts(manifest["tables"], restored)
        result.update(ok=all(r["ok"] for r in rows), tables=rows, table_text=format_table(rows),
                      seconds=round(time.monotonic() - started, 2))
        print(json.dumps(result))
        return 0 if result["ok"] else 1
    except JobError as exc:
        result["error"] = str(exc)
        print(json.dumps(result))
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def restore_clickhouse(cfg: dict, args) -> int:
    ch = cfg["clickhouse"]
    with open(ch["credentials_file"]) as fh:
        creds = json.load(fh)
    started = time.monotonic()
    name = args.name
    if name == "latest":
        remote = f"{ch['remote']}:{ch['bucket']}/{ch['prefix'].strip('/')}"
        listing = json.loads(rclone(cfg, "lsjson", "--dirs-only", remote + "/").stdout or "[]")
        names = sorted(e["Name"] for e in listing if name_time(e["Name"], ch["name_prefix"]))
        if not names:
            raise JobError(f"no ClickHouse backup found in {remote}/")
        name = names[-1]
    log(f"RESTORE DATABASE {ch['database']} AS {args.database} FROM S3('{ch['s3_url'].rstrip('/')}/{name}/', ...)")
    answer = clickhouse_query(ch, creds, f"RESTORE DATABASE `{ch['database']}` AS `{args.database}` FROM "
                                         f"{clickhouse_target(ch, creds, name)}", ch["timeout"])
    log(f"ClickHouse: {answer.strip()} ({time.monotonic() - started:.1f} s)")
    return 0 if "RESTORED" in answer else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llmops_backup.py")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("logical")
    pgb = sub.add_parser("pgbackrest")
    pgb.add_argument("kind", choices=["full", "diff", "incr"])
    sub.add_parser("buckets")
    sub.add_parser("clickhouse")
    met = sub.add_parser("metrics")
    met.add_argument("job")
    rl = sub.add_parser("restore-logical")
    rl.add_argument("--name", default="latest")
    rl.add_argument("--database", required=True)
    rl.add_argument("--source", choices=["s3", "local"], default="s3")
    rl.add_argument("--force", action="store_true")
    rl.add_argument("--verbose", action="store_true")
    rc = sub.add_parser("restore-clickhouse")
    rc.add_argument("--name", default="latest")
    rc.add_argument("--database", required=True)
    args = parser.parse_args(argv)
    cfg = load_config()
    try:
        if args.command == "logical":
            return job_logical(cfg)
        if args.command == "pgbackrest":
            return job_pgbackrest(cfg, args.kind)
        if args.command == "buckets":
            return job_buckets(cfg)
        if args.command == "clickhouse":
            return job_clickhouse(cfg)
        if args.command == "metrics":
            return write_metrics(cfg, args.job)
        if args.command == "restore-logical":
            return restore_logical(cfg, args)
        return restore_clickhouse(cfg, args)
    except JobError as exc:
        log(f"FAILED: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
