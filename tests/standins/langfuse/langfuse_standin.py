"""STAND-IN for the Langfuse web and worker containers (tests only, not Langfuse).

The real images (langfuse/langfuse, langfuse/langfuse-worker) cannot be pulled where the
collection's tests run, so this small service honours the part of their contract that the
deployment roles depend on: the same environment variables, the same start-up checks (it refuses
bad settings and exits non-zero when PostgreSQL, ClickHouse or Redis cannot be used), the same
health/readiness endpoints and a minimal ingestion path that really writes to PostgreSQL, S3,
Redis and ClickHouse. See tests/standins/README.md for what it proves and what it does not.

    langfuse_standin.py web       # the web container (port 3000)
    langfuse_standin.py worker    # the worker container (port 3030)

Without an argument the role comes from $LANGFUSE_STANDIN_ROLE (set at image build time).
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sigv4  # noqa: E402  (copied next to this file in the image)

# Prisma migrate's own advisory lock key: two webs migrating at once wait for each other.
MIGRATION_LOCK_KEY = 72707369
# event types of the legacy batch ingestion API
EVENT_TYPES = {"trace-create", "span-create", "span-update", "generation-create",
               "generation-update", "event-create", "score-create", "observation-create",
               "observation-update", "sdk-log", "dataset-run-item-create"}
# what v4's events_only write mode still accepts on /api/public/ingestion
EVENTS_ONLY_TYPES = {"score-create", "sdk-log"}
QUEUE_KEY = "standin:ingestion-queue"


class ConfigError(Exception):
    """A setting the real Langfuse would refuse to start with."""


def log(msg: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(f"{stamp} {msg}", flush=True)


def env_true(env: dict, name: str, default: str = "false") -> bool:
    return (env.get(name) or default).strip().lower() == "true"


def nonempty(env: dict) -> dict:
    """Langfuse drops empty variables before validating them (removeEmptyEnvVariables)."""
    return {k: v for k, v in env.items() if v != ""}


# --------------------------------------------------------------------------- settings
def parse_database_url(url: str) -> dict:
    """libpq keyword arguments from a Prisma-style PostgreSQL URL.

    Credentials are percent-decoded; Prisma-only query parameters (connection_limit, pool_timeout,
    pgbouncer, schema, ...) are ignored except `schema` (-> search_path), sslmode and the libpq
    parameters psycopg2 understands.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"DATABASE_URL must start with postgresql:// (got {parts.scheme or 'nothing'}://)")
    kwargs: dict = {
        "host": urllib.parse.unquote(parts.hostname or "") or "localhost",
        "port": parts.port or 5432,
        "user": urllib.parse.unquote(parts.username or ""),
        "password": urllib.parse.unquote(parts.password or ""),
        "dbname": urllib.parse.unquote(parts.path.lstrip("/")) or urllib.parse.unquote(parts.username or ""),
    }
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "host", "application_name"):
            kwargs[key] = value
        elif key == "connect_timeout":
            kwargs["connect_timeout"] = int(value)
        elif key == "schema" and value:
            kwargs["options"] = f"-c search_path={value}"
        # connection_limit, pool_timeout, pgbouncer, socket_timeout, ...: Prisma pool settings
    if "password" in kwargs and not kwargs["password"]:
        del kwargs["password"]
    return kwargs


def database_url(env: dict) -> str | None:
    """DATABASE_URL, or one built from DATABASE_HOST/USERNAME/PASSWORD/NAME/ARGS as the real
    entrypoint does."""
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    if env.get("DATABASE_HOST") and env.get("DATABASE_USERNAME") and env.get("DATABASE_NAME"):
        user = urllib.parse.quote(env["DATABASE_USERNAME"], safe="")
        pw = urllib.parse.quote(env.get("DATABASE_PASSWORD", ""), safe="")
        args = f"?{env['DATABASE_ARGS']}" if env.get("DATABASE_ARGS") else ""
        return f"postgresql://{user}:{pw}@{env['DATABASE_HOST']}/{env['DATABASE_NAME']}{args}"
    return None


def parse_redis_config(env: dict) -> dict:
    """redis-py keyword arguments from REDIS_CONNECTION_STRING or REDIS_HOST/PORT/AUTH/USERNAME."""
    tls = env_true(env, "REDIS_TLS_ENABLED")
    if env.get("REDIS_CONNECTION_STRING"):
        parts = urllib.parse.urlsplit(env["REDIS_CONNECTION_STRING"])
        if parts.scheme not in ("redis", "rediss"):
            raise ConfigError("REDIS_CONNECTION_STRING must start with redis:// or rediss://")
        cfg = {
            "host": parts.hostname or "localhost",
            "port": parts.port or 6379,
            "username": urllib.parse.unquote(parts.username) if parts.username else None,
            "password": urllib.parse.unquote(parts.password) if parts.password is not None else None,
            "db": int(parts.path.lstrip("/") or 0),
        }
        tls = tls or parts.scheme == "rediss"
    elif env.get("REDIS_HOST"):
        cfg = {
            "host": env["REDIS_HOST"],
            "port": int(env.get("REDIS_PORT") or 6379),
            "username": env.get("REDIS_USERNAME") or None,
            "password": env.get("REDIS_AUTH") or None,
            "db": 0,
        }
    else:
        raise ConfigError("Redis is not configured: set REDIS_CONNECTION_STRING or REDIS_HOST")
    if cfg["username"] and not cfg["password"]:
        cfg["password"] = ""
    if tls:
        cfg["ssl"] = True
        for var, kw in (("REDIS_TLS_CA_PATH", "ssl_ca_certs"), ("REDIS_TLS_CERT_PATH", "ssl_certfile"),
                        ("REDIS_TLS_KEY_PATH", "ssl_keyfile")):
            if env.get(var):
                cfg[kw] = env[var]
    return cfg


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an HTTP Basic Authorization header, None when absent/malformed."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if ":" not in decoded:
        return None
    user, _colon, password = decoded.partition(":")
    return user, password


def check_encryption_key(value: str | None) -> str | None:
    """Why ENCRYPTION_KEY is unacceptable, or None."""
    if not value:
        return "ENCRYPTION_KEY is required (generate it with: openssl rand -hex 32)"
    if len(value) != 64 or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return ("ENCRYPTION_KEY must be 256 bits, 64 string characters in hex format, "
                "generate via: openssl rand -hex 32")
    return None


def _is_url(value: str, schemes: tuple[str, ...]) -> bool:
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in schemes and bool(parts.netloc)


def validate_env(role: str, raw_env: dict) -> list[str]:
    """The errors the real container would refuse to start with (zod schema + entrypoint)."""
    env = nonempty(raw_env)
    errors = []
    url = database_url(env)
    if not url:
        errors.append("DATABASE_URL is required (or DATABASE_HOST, DATABASE_USERNAME, DATABASE_PASSWORD, "
                      "DATABASE_NAME)")
    else:
        try:
            parse_database_url(url)
        except ConfigError as exc:
            errors.append(str(exc))
    if env.get("DIRECT_URL"):
        try:
            parse_database_url(env["DIRECT_URL"])
        except ConfigError as exc:
            errors.append(str(exc).replace("DATABASE_URL", "DIRECT_URL"))
    key_error = check_encryption_key(env.get("ENCRYPTION_KEY"))
    if key_error:
        errors.append(key_error)
    if not env.get("CLICKHOUSE_URL") or not _is_url(env["CLICKHOUSE_URL"], ("http", "https")):
        errors.append("CLICKHOUSE_URL is required and must be an http(s) URL (port 8123)")
    for name in ("CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "LANGFUSE_S3_EVENT_UPLOAD_BUCKET"):
        if name not in env:
            errors.append(f"{name} is required (an empty value counts as missing)")
    if env.get("CLICKHOUSE_CLUSTER_ENABLED", "true") not in ("true", "false"):
        errors.append("CLICKHOUSE_CLUSTER_ENABLED must be 'true' or 'false'")
    try:
        parse_redis_config(env)
    except (ConfigError, ValueError) as exc:
        errors.append(str(exc))
    if role == "web":
        for name in ("NEXTAUTH_SECRET", "SALT"):
            if name not in env:
                errors.append(f"{name} is required")
        if not env.get("NEXTAUTH_URL") or not _is_url(env["NEXTAUTH_URL"], ("http", "https")):
            errors.append("NEXTAUTH_URL is required and must be a URL (the public address of Langfuse)")
        if env.get("LANGFUSE_INIT_PROJECT_PUBLIC_KEY") and not env.get("LANGFUSE_INIT_PROJECT_SECRET_KEY"):
            errors.append("LANGFUSE_INIT_PROJECT_SECRET_KEY is required with LANGFUSE_INIT_PROJECT_PUBLIC_KEY")
    mode = env.get("LANGFUSE_MIGRATION_V4_WRITE_MODE")
    if mode and mode not in ("legacy", "dual", "events_only"):
        errors.append("LANGFUSE_MIGRATION_V4_WRITE_MODE must be legacy, dual or events_only")
    return errors


def write_mode(env: dict, version: str) -> str:
    """v4 writes only the new events table unless told otherwise; v3 has no such setting."""
    major = int((version.split(".")[0] or "0")) if version[:1].isdigit() else 0
    if major < 4:
        return "legacy"
    return env.get("LANGFUSE_MIGRATION_V4_WRITE_MODE") or "events_only"


def secret_hash(secret: str, salt: str) -> str:
    """What is stored for an API secret key (so that changing SALT breaks every key, as in
    Langfuse)."""
    return hashlib.sha256((secret + salt).encode()).hexdigest()


def s3_object_url(endpoint: str | None, bucket: str, key: str, region: str, path_style: bool) -> str:
    """URL of an object; path style (http://host/bucket/key) or virtual host (bucket.host)."""
    quoted_key = urllib.parse.quote(key, safe="/-_.~")
    if not endpoint:
        endpoint = f"https://s3.{region}.amazonaws.com"
    parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    base_path = parts.path.rstrip("/")
    if path_style:
        return f"{parts.scheme}://{parts.netloc}{base_path}/{bucket}/{quoted_key}"
    return f"{parts.scheme}://{bucket}.{parts.netloc}{base_path}/{quoted_key}"


def event_trace_id(event: dict) -> str | None:
    body = event.get("body") or {}
    if event.get("type") == "trace-create":
        return body.get("id")
    return body.get("traceId")


# --------------------------------------------------------------------------- clients
class Stores:
    """Connections to PostgreSQL, Redis, ClickHouse and S3, built from the Langfuse variables."""

    def __init__(self, env: dict, version: str) -> None:
        self.env = env
        self.version = version
        self.db_kwargs = parse_database_url(database_url(env) or "")
        self.direct_kwargs = parse_database_url(env["DIRECT_URL"]) if env.get("DIRECT_URL") else self.db_kwargs
        self.redis_kwargs = parse_redis_config(env)
        self.redis_prefix = env.get("REDIS_KEY_PREFIX", "")
        self._redis = None
        self.ch_url = env["CLICKHOUSE_URL"].rstrip("/")
        self.ch_user = env.get("CLICKHOUSE_USER", "")
        self.ch_password = env.get("CLICKHOUSE_PASSWORD", "")
        self.ch_db = env.get("CLICKHOUSE_DB") or "default"
        self.s3_bucket = env.get("LANGFUSE_S3_EVENT_UPLOAD_BUCKET", "")
        self.s3_prefix = env.get("LANGFUSE_S3_EVENT_UPLOAD_PREFIX", "")
        self.s3_region = env.get("LANGFUSE_S3_EVENT_UPLOAD_REGION") or "us-east-1"
        self.s3_endpoint = env.get("LANGFUSE_S3_EVENT_UPLOAD_ENDPOINT")
        self.s3_access_key = env.get("LANGFUSE_S3_EVENT_UPLOAD_ACCESS_KEY_ID", "")
        self.s3_secret_key = env.get("LANGFUSE_S3_EVENT_UPLOAD_SECRET_ACCESS_KEY", "")
        self.s3_path_style = env_true(env, "LANGFUSE_S3_EVENT_UPLOAD_FORCE_PATH_STYLE")

    # PostgreSQL
    def pg(self, direct: bool = False, timeout: int = 5):
        import psycopg2  # noqa: PLC0415  (only in the image)
        kwargs = dict(self.direct_kwargs if direct else self.db_kwargs)
        kwargs.setdefault("connect_timeout", timeout)
        kwargs.setdefault("application_name", f"langfuse-standin-{self.version}")
        return psycopg2.connect(**kwargs)

    def pg_ping(self) -> None:
        conn = self.pg(timeout=3)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
        finally:
            conn.close()

    # Redis
    def redis(self):
        if self._redis is None:
            import redis  # noqa: PLC0415  (only in the image)
            self._redis = redis.Redis(socket_connect_timeout=3, socket_timeout=5,
                                      health_check_interval=10, **self.redis_kwargs)
        return self._redis

    def redis_key(self, name: str) -> str:
        return f"{self.redis_prefix}{name}"

    # ClickHouse (HTTP interface)
    def clickhouse(self, query: str, data: bytes | None = None, url: str | None = None) -> str:
        params = urllib.parse.urlencode({"database": self.ch_db, "query": query})
        req = urllib.request.Request(f"{(url or self.ch_url).rstrip('/')}/?{params}", data=data,
                                     method="POST" if data is not None else "GET")
        req.add_header("X-ClickHouse-User", self.ch_user)
        req.add_header("X-ClickHouse-Key", self.ch_password)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"ClickHouse answered HTTP {exc.code}: "
                               f"{exc.read().decode(errors='replace').strip()}") from None

    # S3
    def s3_key(self, project_id: str, event: dict) -> str:
        kind = (event.get("type") or "event").split("-")[0]
        return f"{self.s3_prefix}{project_id}/{kind}/{event_trace_id(event) or 'none'}/{event['id']}.json"

    def s3_request(self, method: str, key: str, body: bytes = b"") -> bytes:
        url = s3_object_url(self.s3_endpoint, self.s3_bucket, key, self.s3_region, self.s3_path_style)
        headers = {"Content-Type": "application/json"} if method == "PUT" else {}
        headers = sigv4.sign_request(method, url, self.s3_access_key, self.s3_secret_key, self.s3_region,
                                     body=body, headers=headers)
        req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            code = re.search(r"<Code>([^<]+)</Code>", detail)
            raise RuntimeError(f"S3 {method} {url} failed: HTTP {exc.code} "
                               f"{code.group(1) if code else detail[:200]}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"S3 {method} {url} failed: {exc}") from None


# --------------------------------------------------------------------------- start-up
PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS standin_migrations (
    version     text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    applied_by  text NOT NULL
);
CREATE TABLE IF NOT EXISTS standin_api_keys (
    public_key         text PRIMARY KEY,
    secret_key_sha256  text NOT NULL,
    project_id         text NOT NULL,
    org_id             text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS standin_users (
    email            text PRIMARY KEY,
    password_sha256  text NOT NULL,
    org_id           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS standin_events (
    id            text PRIMARY KEY,
    project_id    text NOT NULL,
    trace_id      text,
    type          text NOT NULL,
    body          jsonb NOT NULL,
    s3_key        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    processed_by  text
);
CREATE INDEX IF NOT EXISTS standin_events_trace ON standin_events (trace_id);
"""

CH_TABLE = ("CREATE TABLE IF NOT EXISTS standin_events{cluster} (id String, project_id String, "
            "trace_id String, type String, body String, created_at DateTime64(3)) "
            "ENGINE = {engine} ORDER BY (project_id, id)")


def migrate_postgres(stores: Stores, env: dict) -> None:
    """Prisma `migrate deploy` stand-in: advisory lock, schema, version row."""
    who = f"{socket.gethostname()}:{os.getpid()}"
    conn = stores.pg(direct=True)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            if not cur.fetchone()[0]:
                log("migrations: another instance holds the migration lock; waiting for it")
                cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            try:
                delay = float(env.get("STANDIN_MIGRATION_DELAY") or 0)
                if delay:
                    time.sleep(delay)
                cur.execute(PG_SCHEMA)
                cur.execute("INSERT INTO standin_migrations (version, applied_by) VALUES (%s, %s) "
                            "ON CONFLICT (version) DO NOTHING RETURNING version", (stores.version, who))
                applied = cur.fetchone()
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    finally:
        conn.close()
    log(f"migrations: PostgreSQL schema {'migrated to' if applied else 'already at'} {stores.version}")


def migrate_clickhouse(stores: Stores, env: dict) -> None:
    """golang-migrate stand-in: reach CLICKHOUSE_MIGRATION_URL, then create the table."""
    mig = env.get("CLICKHOUSE_MIGRATION_URL")
    mig_http = None
    if mig:
        parts = urllib.parse.urlsplit(mig)
        if parts.scheme in ("http", "https"):
            mig_http = f"{parts.scheme}://{parts.netloc}"
        else:  # clickhouse://host:9000 (native protocol): the stand-in only checks the port is open
            host, port = parts.hostname or "localhost", parts.port or 9000
            try:
                socket.create_connection((host, port), timeout=5).close()
            except OSError as exc:
                raise RuntimeError(f"CLICKHOUSE_MIGRATION_URL {host}:{port} is not reachable: {exc}") from None
    answer = stores.clickhouse("SELECT 1", url=mig_http).strip()
    if answer != "1":
        raise RuntimeError(f"ClickHouse answered {answer!r} to SELECT 1")
    if env_true(env, "CLICKHOUSE_CLUSTER_ENABLED", "true"):
        name = env.get("CLICKHOUSE_CLUSTER_NAME") or "default"
        ddl = CH_TABLE.format(cluster=f" ON CLUSTER {name}", engine="ReplicatedMergeTree")
    else:
        ddl = CH_TABLE.format(cluster="", engine="MergeTree")
    stores.clickhouse(ddl, data=b"", url=mig_http)
    log("migrations: ClickHouse schema is current")


def headless_init(stores: Stores, env: dict) -> None:
    """LANGFUSE_INIT_*: create org/project/API key/user once; never update them (upsert only)."""
    org = env.get("LANGFUSE_INIT_ORG_ID")
    if not org:
        log("init: LANGFUSE_INIT_ORG_ID is not set, no organisation/project/API key is created")
        return
    project = env.get("LANGFUSE_INIT_PROJECT_ID") or f"{org}-project"
    conn = stores.pg()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            pk, sk = env.get("LANGFUSE_INIT_PROJECT_PUBLIC_KEY"), env.get("LANGFUSE_INIT_PROJECT_SECRET_KEY")
            if pk and sk:
                cur.execute("INSERT INTO standin_api_keys (public_key, secret_key_sha256, project_id, org_id) "
                            "VALUES (%s, %s, %s, %s) ON CONFLICT (public_key) DO NOTHING RETURNING public_key",
                            (pk, secret_hash(sk, env.get("SALT", "")), project, org))
                log(f"init: API key {pk} {'created' if cur.fetchone() else 'exists, left unchanged'}")
            email, password = env.get("LANGFUSE_INIT_USER_EMAIL"), env.get("LANGFUSE_INIT_USER_PASSWORD")
            if email and password:
                cur.execute("INSERT INTO standin_users (email, password_sha256, org_id) VALUES (%s, %s, %s) "
                            "ON CONFLICT (email) DO NOTHING RETURNING email",
                            (email, secret_hash(password, env.get("SALT", "")), org))
                log(f"init: user {email} {'created' if cur.fetchone() else 'exists, left unchanged'}")
    finally:
        conn.close()


def redis_error_text(exc: Exception) -> str:
    """redis-py strips the error code from an authentication failure; put it back."""
    import redis  # noqa: PLC0415
    msg = str(exc)
    if isinstance(exc, redis.exceptions.AuthenticationError) and not msg.startswith(("WRONGPASS", "NOAUTH", "ERR")):
        msg = f"WRONGPASS {msg}"
    return msg


def redis_check_at_start(stores: Stores, deadline: float) -> None:
    """Connect and authenticate; WRONGPASS is fatal at once, other errors are retried."""
    import redis  # noqa: PLC0415
    while True:
        try:
            client = stores.redis()
            client.ping()
            break
        except redis.exceptions.AuthenticationError as exc:
            raise RuntimeError(f"Redis authentication failed: {redis_error_text(exc)}") from None
        except redis.exceptions.ResponseError as exc:
            if "WRONGPASS" in str(exc) or "NOAUTH" in str(exc):
                raise RuntimeError(f"Redis authentication failed: {exc}") from None
            raise
        except redis.exceptions.ConnectionError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis is not reachable at {stores.redis_kwargs['host']}:"
                                   f"{stores.redis_kwargs['port']}: {exc}") from None
            log(f"Redis connection failed, retrying: {exc}")
            time.sleep(1)
    try:
        policy = client.info("memory").get("maxmemory_policy")
    except redis.exceptions.RedisError:
        policy = None
    if policy and policy != "noeviction":
        log(f'IMPORTANT! Eviction policy is {policy}. It should be "noeviction"')


# --------------------------------------------------------------------------- worker loop
def queue_consumption_stuck(now: float, tracking_since: float | None, last_activity: float | None,
                            threshold_minutes: int) -> tuple[bool, int | None]:
    """Langfuse's worker (worker/src/features/health/queueConsumption.ts, v4.16.0): stuck once no job was
    picked up or completed for the threshold, counted from the later of the consumer's registration and
    its last job; a container without a registered consumer is never stuck. (stuck, seconds since)."""
    if tracking_since is None:
        return False, None
    seconds = max(0, round(now - max(tracking_since, last_activity or 0)))
    return seconds > threshold_minutes * 60, seconds


def worker_loop(app: App) -> None:
    """Consume the ingestion queue: S3 object -> ClickHouse row -> PostgreSQL processed mark."""
    import redis  # noqa: PLC0415
    stores = app.stores
    queue = stores.redis_key(QUEUE_KEY)
    app.tracking_since = time.time()
    while not app.stopping.is_set():
        try:
            item = stores.redis().brpop([queue], timeout=1)
        except redis.exceptions.RedisError as exc:
            log(f"worker: queue read failed: {exc}")
            time.sleep(2)
            continue
        if not item:
            continue
        app.last_activity = time.time()
        job = json.loads(item[1])
        try:
            event = json.loads(stores.s3_request("GET", job["s3_key"]))
            row = {"id": event["id"], "project_id": job["project_id"], "trace_id": event_trace_id(event) or "",
                   "type": event.get("type", ""), "body": json.dumps(event.get("body") or {}),
                   "created_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]}
            stores.clickhouse("INSERT INTO standin_events FORMAT JSONEachRow", data=json.dumps(row).encode())
            conn = stores.pg()
            try:
                with conn, conn.cursor() as cur:
                    cur.execute("UPDATE standin_events SET processed_at = now(), processed_by = %s WHERE id = %s",
                                (socket.gethostname(), event["id"]))
            finally:
                conn.close()
            log(f"worker: processed event {event['id']} ({event.get('type')}) from s3://{stores.s3_bucket}/"
                f"{job['s3_key']}")
        except Exception as exc:  # noqa: BLE001  (keep the job, report, retry later)
            job["attempts"] = job.get("attempts", 0) + 1
            if job["attempts"] >= app.max_attempts:  # like a BullMQ job that used up its attempts
                log(f"worker: event {job.get('event_id')} failed {job['attempts']} times, dropped: {exc}")
                continue
            log(f"worker: processing event {job.get('event_id')} failed (attempt {job['attempts']}), "
                f"will retry: {exc}")
            try:
                stores.redis().lpush(queue, json.dumps(job))
            except redis.exceptions.RedisError:
                log(f"worker: could not re-queue event {job.get('event_id')}")
            app.stopping.wait(2)


# --------------------------------------------------------------------------- HTTP
class App:
    def __init__(self, role: str, env: dict, version: str) -> None:
        self.role = role
        self.env = env
        self.version = version
        self.mode = write_mode(env, version)
        self.stores = Stores(env, version)
        self.sigterm = threading.Event()
        self.stopping = threading.Event()
        self.max_attempts = int(env.get("STANDIN_WORKER_MAX_ATTEMPTS") or 10)
        # LANGFUSE_QUEUE_CONSUMPTION_STUCK_THRESHOLD_MINUTES of Langfuse's worker (default 60)
        self.stuck_threshold_minutes = int(env.get("LANGFUSE_QUEUE_CONSUMPTION_STUCK_THRESHOLD_MINUTES") or 60)
        self.tracking_since: float | None = None
        self.last_activity: float | None = None

    # --- auth against the API keys stored by headless init
    def project_for(self, header: str | None) -> str | None:
        creds = parse_basic_auth(header)
        if not creds:
            return None
        conn = self.stores.pg()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT secret_key_sha256, project_id FROM standin_api_keys WHERE public_key = %s",
                            (creds[0],))
                row = cur.fetchone()
        finally:
            conn.close()
        if row and row[0] == secret_hash(creds[1], self.env.get("SALT", "")):
            return row[1]
        return None

    def ingest(self, project: str, batch: list) -> tuple[list, list]:
        successes, errors = [], []
        for event in batch:
            eid = event.get("id") if isinstance(event, dict) else None
            etype = event.get("type") if isinstance(event, dict) else None
            if not eid or etype not in EVENT_TYPES or not isinstance(event.get("body"), dict):
                errors.append({"id": eid, "status": 400, "message": "Invalid request data",
                               "error": "event needs id, a known type and a body object"})
                continue
            if self.mode == "events_only" and etype not in EVENTS_ONLY_TYPES:
                errors.append({"id": eid, "status": 400, "message":
                               f'Event type "{etype}" is not accepted by /api/public/ingestion when '
                               "LANGFUSE_MIGRATION_V4_WRITE_MODE is events_only"})
                continue
            key = self.stores.s3_key(project, event)
            try:
                self.stores.s3_request("PUT", key, json.dumps(event).encode())
                conn = self.stores.pg()
                try:
                    with conn, conn.cursor() as cur:
                        cur.execute(
                            "INSERT INTO standin_events (id, project_id, trace_id, type, body, s3_key) "
                            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, "
                            "s3_key = EXCLUDED.s3_key, processed_at = NULL, processed_by = NULL",
                            (eid, project, event_trace_id(event), etype, json.dumps(event["body"]), key))
                finally:
                    conn.close()
                self.stores.redis().lpush(self.stores.redis_key(QUEUE_KEY),
                                          json.dumps({"event_id": eid, "s3_key": key, "project_id": project}))
                successes.append({"id": eid, "status": 201})
            except Exception as exc:  # noqa: BLE001  (reported per event, as Langfuse does)
                log(f"ingestion: event {eid} failed: {exc}")
                errors.append({"id": eid, "status": 500, "message": "Internal Server Error", "error": str(exc)})
        return successes, errors

    def trace(self, project: str, trace_id: str) -> dict | None:
        conn = self.stores.pg()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id, type, body, s3_key, created_at, processed_at, processed_by "
                            "FROM standin_events WHERE project_id = %s AND trace_id = %s ORDER BY created_at",
                            (project, trace_id))
                rows = cur.fetchall()
        finally:
            conn.close()
        traces = [r for r in rows if r[1] == "trace-create"]
        if not traces:
            return None
        body = dict(traces[-1][2])
        out = dict(body)
        out.update({
            "id": trace_id, "projectId": project, "body": body,
            "timestamp": body.get("timestamp") or traces[-1][4].isoformat(),
            "observations": [r[0] for r in rows if r[1] != "trace-create" and r[1] != "score-create"],
            "scores": [r[0] for r in rows if r[1] == "score-create"],
            "standin": {"events": [{"id": r[0], "type": r[1], "s3Key": r[3],
                                    "processedAt": r[5].isoformat() if r[5] else None,
                                    "processedBy": r[6]} for r in rows],
                        "processedByWorker": all(r[5] is not None for r in rows)},
        })
        return out


class Handler(BaseHTTPRequestHandler):
    server_version = "langfuse-standin"
    protocol_version = "HTTP/1.1"
    app: App  # set on the subclass

    def log_message(self, fmt: str, *args) -> None:  # one line per request, to stdout
        log(f'{self.app.role} {self.client_address[0]} "{self.requestline}" {args[1] if len(args) > 1 else ""}')

    def send_json(self, status: int, payload, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        app = self.app
        if app.role == "worker":
            if url.path == "/api/health":
                problems = []
                try:
                    app.stores.redis().ping()
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"redis: {redis_error_text(exc)}")
                try:
                    app.stores.pg_ping()
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"postgres: {str(exc).strip()}")
                if problems:
                    return self.send_json(503, {"status": "error", "message": "; ".join(problems)})
                if query.get("failIfQueueConsumptionStuck") == "true":
                    stuck, seconds = queue_consumption_stuck(time.time(), app.tracking_since, app.last_activity,
                                                             app.stuck_threshold_minutes)
                    details = {"queueConsumption": {"secondsSinceLastActivity": seconds, "stuck": stuck,
                                                    "thresholdSeconds": app.stuck_threshold_minutes * 60}}
                    if stuck:
                        log(f"health: queue consumption stuck (last job activity {seconds}s ago)")
                        return self.send_json(503, {"status": "Queue consumption stuck", **details})
                    return self.send_json(200, {"status": "OK", "version": app.version, **details})
                return self.send_json(200, {"status": "OK", "version": app.version})
            if url.path == "/api/ready":
                if app.sigterm.is_set():
                    return self.send_json(500, {"status": "SIGTERM received, shutting down"})
                return self.send_json(200, {"status": "OK"})
            return self.send_json(404, {"message": "Not found"})
        # web
        if url.path == "/api/public/health":
            if query.get("failIfDatabaseUnavailable") == "true":
                try:
                    app.stores.pg_ping()
                except Exception as exc:  # noqa: BLE001
                    log(f"health: database unavailable: {str(exc).strip()}")
                    return self.send_json(503, {"status": "Database not available", "version": app.version})
            return self.send_json(200, {"status": "OK", "version": app.version})
        if url.path == "/api/public/ready":
            if app.sigterm.is_set():
                return self.send_json(500, {"status": "SIGTERM received, shutting down", "version": app.version})
            return self.send_json(200, {"status": "OK", "version": app.version})
        if url.path == "/":
            target = f"{app.env['NEXTAUTH_URL'].rstrip('/')}/auth/sign-in"
            return self.send_json(307, {"redirect": target}, {"Location": target})
        if url.path == "/auth/sign-in":
            body = b"<!doctype html><title>Langfuse stand-in</title><h1>Langfuse stand-in: sign in</h1>\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return None
        if url.path.startswith("/api/public/"):
            project = self.authenticate()
            if project is None:
                return None
            if url.path == "/api/public/projects":
                return self.send_json(200, {"data": [{"id": project, "name": project}]})
            match = re.fullmatch(r"/api/public/traces/([^/]+)", url.path)
            if match:
                trace_id = urllib.parse.unquote(match.group(1))
                found = None if app.mode == "events_only" else app.trace(project, trace_id)
                if found is None:
                    return self.send_json(404, {"message": f"Trace {trace_id} not found within authorized project",
                                                "error": "LangfuseNotFoundError"})
                return self.send_json(200, found)
        return self.send_json(404, {"message": "Not found"})

    def do_POST(self) -> None:  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        raw = self.read_body()
        if self.app.role != "web" or url.path != "/api/public/ingestion":
            return self.send_json(404, {"message": "Not found"})
        project = self.authenticate()
        if project is None:
            return None
        try:
            payload = json.loads(raw or b"null")
        except ValueError:
            return self.send_json(400, {"message": "Invalid request data", "error": "body is not JSON"})
        if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
            return self.send_json(400, {"message": "Invalid request data", "error": "expected {\"batch\": [...]}"})
        successes, errors = self.app.ingest(project, payload["batch"])
        return self.send_json(207, {"successes": successes, "errors": errors})

    def authenticate(self) -> str | None:
        header = self.headers.get("Authorization")
        try:
            project = self.app.project_for(header)
        except Exception as exc:  # noqa: BLE001
            log(f"auth: database unavailable: {str(exc).strip()}")
            self.send_json(500, {"message": "Internal Server Error", "error": "database unavailable"})
            return None
        if project is None:
            self.send_json(401, {"message": "Invalid credentials. Confirm that you've configured the correct host.",
                                 "error": "UnauthorizedError"},
                           {"WWW-Authenticate": 'Basic realm="langfuse"'})
        return project


def bind_address(env: dict) -> str:
    """Like Node's listen(port, HOSTNAME): a name is resolved (Docker sets HOSTNAME to the
    container's name unless told otherwise, which binds to the container's address only)."""
    return env.get("HOSTNAME") or "0.0.0.0"


def main(argv: list[str]) -> int:
    role = (argv[1] if len(argv) > 1 else os.environ.get("LANGFUSE_STANDIN_ROLE", "web")).strip()
    if role not in ("web", "worker"):
        print(f"usage: {argv[0]} web|worker", file=sys.stderr)
        return 2
    env = nonempty(dict(os.environ))
    version = env.get("LANGFUSE_STANDIN_VERSION", "0.0.0")
    log(f"Langfuse {role} STAND-IN {version} (tests only; not Langfuse) starting")
    errors = validate_env(role, env)
    if errors:
        for err in errors:
            log(f"Invalid environment variables: {err}")
        return 1
    app = App(role, env, version)
    try:
        if role == "web":
            if env_true(env, "LANGFUSE_AUTO_POSTGRES_MIGRATION_DISABLED"):
                log("migrations: PostgreSQL migrations disabled (LANGFUSE_AUTO_POSTGRES_MIGRATION_DISABLED)")
            else:
                migrate_postgres(app.stores, env)
            if env_true(env, "LANGFUSE_AUTO_CLICKHOUSE_MIGRATION_DISABLED"):
                log("migrations: ClickHouse migrations disabled (LANGFUSE_AUTO_CLICKHOUSE_MIGRATION_DISABLED)")
            else:
                migrate_clickhouse(app.stores, env)
            headless_init(app.stores, env)
        else:
            redis_check_at_start(app.stores, time.monotonic() + float(env.get("STANDIN_REDIS_START_TIMEOUT", 30)))
            try:
                app.stores.pg_ping()
            except Exception as exc:  # noqa: BLE001
                log(f"warning: PostgreSQL is not reachable yet: {str(exc).strip()}")
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).strip().replace("\n", " ")
        if "psycopg2" in type(exc).__module__:  # worded like Prisma's errors
            if "authentication failed" in msg or "no pg_hba.conf entry" in msg:
                msg = f"Error: P1000: Authentication failed against database server: {msg}"
            else:
                msg = f"Error: P1001: Can't reach database server: {msg}"
        log(f"start-up failed: {msg}")
        return 1

    port = int(env.get("PORT") or (3000 if role == "web" else 3030))
    handler = type("BoundHandler", (Handler,), {"app": app})
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    try:
        server = ThreadingHTTPServer((bind_address(env), port), handler)
    except OSError as exc:
        log(f"cannot listen on {bind_address(env)}:{port}: {exc}")
        return 1

    delay = float(env.get("STANDIN_SHUTDOWN_DELAY") or 5)

    def on_signal(signum, _frame) -> None:
        if app.sigterm.is_set():
            return
        app.sigterm.set()
        log(f"{signal.Signals(signum).name} received: readiness now fails; exiting in {delay:g} s")

        def stop() -> None:
            time.sleep(delay)
            app.stopping.set()
            server.shutdown()
        threading.Thread(target=stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if role == "worker":
        threading.Thread(target=worker_loop, args=(app,), daemon=True).start()
    log(f"{role} listening on {bind_address(env)}:{port} (write mode {app.mode})")
    server.serve_forever(poll_interval=0.5)
    server.server_close()
    log("shut down cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
