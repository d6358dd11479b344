"""STAND-IN for the clickhouse/clickhouse-server container (tests only, not ClickHouse).

It speaks a small part of ClickHouse's HTTP interface (port 8123): /ping, /replicas_status and
queries sent as ?query=... or as the POST body, authenticated the ways ClickHouse accepts
(X-ClickHouse-User/X-ClickHouse-Key headers, HTTP Basic, ?user=&password=) against the users the
real image would have: CLICKHOUSE_USER/CLICKHOUSE_PASSWORD (CLICKHOUSE_DB is created) plus users
declared in /etc/clickhouse-server/users.xml and users.d/*.xml (plain or sha256 passwords).

It understands a few statements (SELECT <n>, version(), currentUser(), currentDatabase(),
count()/* FROM, SHOW DATABASES/TABLES, EXISTS, CREATE/DROP DATABASE/TABLE, INSERT ... FORMAT
JSONEachRow); tables and rows are kept in /var/lib/clickhouse/standin-state.json, so they survive
a restart when that path is a volume. Other statements are accepted and do nothing, except
BACKUP/RESTORE, which fail (a backup test must not pass against a stand-in). Port 9000 (native
protocol) only accepts and closes connections, so that reachability checks work.

Not ClickHouse: no SQL engine, no native protocol, no Keeper, no config.d handling.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import sys
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = os.environ.get("CLICKHOUSE_STANDIN_VERSION", "26.4.1.1")
CONFIG_DIR = Path(os.environ.get("CLICKHOUSE_CONFIG_DIR", "/etc/clickhouse-server"))
STATE = Path(os.environ.get("CLICKHOUSE_STANDIN_STATE", "/var/lib/clickhouse/standin-state.json"))
# exception code -> (name, HTTP status) as the real server reports them
ERRORS = {
    48: ("NOT_IMPLEMENTED", 501),
    57: ("TABLE_ALREADY_EXISTS", 500),
    60: ("UNKNOWN_TABLE", 404),
    62: ("SYNTAX_ERROR", 400),
    81: ("UNKNOWN_DATABASE", 404),
    82: ("DATABASE_ALREADY_EXISTS", 500),
    117: ("INCORRECT_DATA", 400),
    139: ("NO_ELEMENTS_IN_CONFIG", 500),
    164: ("READONLY", 500),
    499: ("S3_ERROR", 500),
    516: ("AUTHENTICATION_FAILED", 403),
}
READ_ONLY = re.compile(r"^\s*(SELECT|SHOW|EXISTS|DESCRIBE|DESC|WITH|EXPLAIN)\b", re.I)
NAME = r"`?([A-Za-z0-9_.\-]+)`?"


class CHError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def render(self) -> tuple[int, str]:
        name, status = ERRORS.get(self.code, ("UNKNOWN", 500))
        return status, f"Code: {self.code}. DB::Exception: {self}. ({name}) (version {VERSION} (official build))\n"


def log(msg: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(f"{stamp} {msg}", flush=True)


# --------------------------------------------------------------------------- users
def users_from_env(env: dict) -> dict[str, dict]:
    """The user the image's entrypoint sets up from CLICKHOUSE_USER/CLICKHOUSE_PASSWORD."""
    user = env.get("CLICKHOUSE_USER") or "default"
    password = env.get("CLICKHOUSE_PASSWORD", "")
    # like the real image: a default user without a password is reachable from localhost only
    local_only = user == "default" and not password and env.get("CLICKHOUSE_SKIP_USER_SETUP") != "1"
    return {user: {"password": password, "local_only": local_only}}


def users_from_xml(config_dir: Path) -> dict[str, dict]:
    """Users declared in users.xml and users.d/*.xml (<password> or <password_sha256_hex>)."""
    users: dict[str, dict] = {}
    files = [config_dir / "users.xml", *sorted((config_dir / "users.d").glob("*.xml"))]
    for path in files:
        if not path.is_file():
            continue
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            log(f"warning: cannot parse {path}: {exc}")
            continue
        for block in root.findall("users"):
            for user in block:
                if user.get("remove") or user.get("replace") == "remove":
                    users.pop(user.tag, None)
                    continue
                entry = users.setdefault(user.tag, {"local_only": False})
                if user.find("password") is not None:
                    entry["password"] = user.findtext("password") or ""
                if user.find("password_sha256_hex") is not None:
                    entry["sha256"] = (user.findtext("password_sha256_hex") or "").strip().lower()
                    entry.pop("password", None)
    return {name: u for name, u in users.items() if "password" in u or "sha256" in u}


def check_password(entry: dict, password: str) -> bool:
    if "sha256" in entry:
        return hashlib.sha256(password.encode()).hexdigest() == entry["sha256"]
    return entry.get("password", "") == password


def credentials(headers, query: dict) -> tuple[str, str]:
    """(user, password) the way ClickHouse reads them: headers, then Basic auth, then URL."""
    if headers.get("X-ClickHouse-User") is not None:
        return headers.get("X-ClickHouse-User"), headers.get("X-ClickHouse-Key") or ""
    auth = headers.get("Authorization") or ""
    if auth[:6].lower() == "basic ":
        try:
            user, _colon, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            return user, password
        except (ValueError, UnicodeDecodeError):
            pass
    return query.get("user") or "default", query.get("password") or ""


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- state
class Store:
    """Databases, tables and inserted rows, persisted as JSON."""

    def __init__(self, path: Path, default_db: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data = {"databases": ["default", "system"], "tables": {}}
        if path.is_file():
            try:
                self.data = json.loads(path.read_text())
            except ValueError:
                log(f"warning: {path} is unreadable, starting empty")
        if default_db not in self.data["databases"]:
            self.data["databases"].append(default_db)
        self.save()

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data))
            tmp.replace(self.path)
        except OSError as exc:
            log(f"warning: cannot write {self.path}: {exc}")


def split_format(sql: str) -> tuple[str, str | None]:
    match = re.search(r"\s+FORMAT\s+(\w+)\s*$", sql, re.I)
    if match:
        return sql[:match.start()], match.group(1)
    return sql, None


def qualified(name: str, db: str) -> str:
    return name if "." in name else f"{db}.{name}"


def render(rows: list[list], names: list[str], fmt: str | None) -> str:
    fmt = (fmt or "TabSeparated").lower()
    if fmt == "jsoneachrow":
        return "".join(json.dumps(dict(zip(names, r))) + "\n" for r in rows)
    if fmt == "json":
        return json.dumps({"meta": [{"name": n} for n in names],
                           "data": [dict(zip(names, r)) for r in rows], "rows": len(rows)}) + "\n"
    return "".join("\t".join(str(v) for v in r) + "\n" for r in rows)


BACKUP_S3 = re.compile(
    r"^(?P<kind>BACKUP|RESTORE)\s+(?P<what>DATABASE|TABLE)\s+(?P<name>\S+)(?:\s+AS\s+(?P<as>\S+))?\s+"
    r"(?P<dir>TO|FROM)\s+S3\(\s*'(?P<url>(?:[^'\\]|\\.)*)'\s*"
    r"(?:,\s*'(?P<key>(?:[^'\\]|\\.)*)'\s*,\s*'(?P<secret>(?:[^'\\]|\\.)*)'\s*)?\)", re.I | re.S)


def unquote(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def probe_s3(url: str, key: str, secret: str, ca_file: str | None) -> tuple[int, str]:
    """A signed ListObjectsV2 (max-keys=1) on the bucket of an S3(...) URL: (HTTP status, S3 error code).
    Raises OSError when the endpoint is unreachable."""
    import ssl  # noqa: PLC0415
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import sigv4  # noqa: PLC0415  (copied next to this file in the image)
    parts = urllib.parse.urlsplit(url)
    bucket, _sep, prefix = parts.path.lstrip("/").partition("/")
    query = urllib.parse.urlencode({"list-type": "2", "max-keys": "1", "prefix": prefix})
    target = f"{parts.scheme}://{parts.netloc}/{bucket}?{query}"
    headers = sigv4.sign_request("GET", target, key, secret, "us-east-1")
    context = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
    try:
        with urllib.request.urlopen(urllib.request.Request(target, headers=headers), timeout=10,
                                    context=context) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        found = re.search(r"<Code>([^<]+)</Code>", exc.read().decode(errors="replace"))
        return exc.code, found.group(1) if found else ""


def backup_or_restore(sql: str, env: dict) -> None:
    """BACKUP/RESTORE ... TO/FROM S3('url', 'key', 'secret'): the stand-in cannot write or read a
    backup, but it checks the wiring a real server depends on - the statement parses, the
    endpoint answers, the bucket exists and the credentials are accepted - and then fails with
    NOT_IMPLEMENTED. Logged with the secret masked, as ClickHouse masks it in its logs."""
    m = BACKUP_S3.match(sql)
    if not m or m.group("key") is None:
        raise CHError(48, "BACKUP/RESTORE is not implemented by the ClickHouse stand-in (tests only)")
    url, key, secret = unquote(m.group("url")), unquote(m.group("key")), unquote(m.group("secret"))
    shown = f"{m.group('kind').upper()} {m.group('what').upper()} {m.group('name')} {m.group('dir').upper()} " \
            f"S3('{url}', '{key}', '[HIDDEN]')"
    try:
        status, code = probe_s3(url, key, secret, env.get("CLICKHOUSE_STANDIN_CA_FILE") or None)
    except OSError as exc:
        log(f"{shown}: S3 endpoint unreachable: {exc}")
        raise CHError(499, f"S3 endpoint of {url} is unreachable: {exc}") from None
    if status >= 300:
        log(f"{shown}: S3 answered {status} {code}")
        raise CHError(499, f"Message: {code or status}, bucket of {url}: the S3 target refused the request")
    log(f"{shown}: S3 target verified (bucket reachable, credentials accepted); not executed (stand-in)")
    raise CHError(48, f"{m.group('kind').upper()} to/from S3 target {url}: bucket reachable and credentials "
                      "accepted, but writing or reading a backup is not implemented by the ClickHouse stand-in "
                      "(tests only)")


def execute(store: Store, sql: str, data: str, db: str, user: str, env: dict) -> str:
    """Run one statement of the small dialect the stand-in knows."""
    sql = re.sub(r"--[^\n]*", "", sql).strip().rstrip(";").strip()
    if not sql:
        raise CHError(62, "Empty query")
    cluster_ok = env.get("CLICKHOUSE_STANDIN_KEEPER") == "true"
    if not cluster_ok and (re.search(r"\bON\s+CLUSTER\b", sql, re.I) or re.search(r"\bReplicated\w*MergeTree", sql)):
        raise CHError(139, "There is no Zookeeper configuration in server config")
    if re.match(r"^(BACKUP|RESTORE)\b", sql, re.I):
        backup_or_restore(sql, env)
    body, fmt = split_format(sql)
    tables = store.data["tables"]
    m = re.fullmatch(r"SELECT\s+(-?\d+(?:\.\d+)?)", body, re.I)
    if m:
        return render([[m.group(1)]], [m.group(1)], fmt)
    m = re.fullmatch(r"SELECT\s+(version|currentUser|currentDatabase|uptime)\(\)", body, re.I)
    if m:
        value = {"version": VERSION, "currentuser": user, "currentdatabase": db, "uptime": 1}[m.group(1).lower()]
        return render([[value]], [m.group(0)[7:]], fmt)
    m = re.fullmatch(rf"SELECT\s+(count\(\)|\*)\s+FROM\s+{NAME}", body, re.I)
    if m:
        name = qualified(m.group(2), db)
        if name not in tables:
            raise CHError(60, f"Table {name} does not exist")
        rows = tables[name]["rows"]
        if m.group(1) != "*":
            return render([[len(rows)]], ["count()"], fmt)
        names = sorted({k for r in rows for k in r})
        if (fmt or "").lower() in ("jsoneachrow", "json"):
            return render([[r.get(n) for n in names] for r in rows], names, fmt)
        return render([[r.get(n, "") for n in names] for r in rows], names, fmt)
    if re.fullmatch(r"SHOW\s+DATABASES", body, re.I):
        return render([[d] for d in sorted(store.data["databases"])], ["name"], fmt)
    m = re.fullmatch(rf"SHOW\s+TABLES(?:\s+(?:FROM|IN)\s+{NAME})?", body, re.I)
    if m:
        target = m.group(1) or db
        return render([[t.split(".", 1)[1]] for t in sorted(tables) if t.split(".", 1)[0] == target], ["name"], fmt)
    m = re.fullmatch(rf"EXISTS\s+(?:TABLE\s+)?{NAME}", body, re.I)
    if m:
        return render([[1 if qualified(m.group(1), db) in tables else 0]], ["result"], fmt)
    m = re.match(rf"CREATE\s+DATABASE\s+(IF\s+NOT\s+EXISTS\s+)?{NAME}(\s|$)", body, re.I)
    if m:
        with store.lock:
            if m.group(2) in store.data["databases"]:
                if not m.group(1):
                    raise CHError(82, f"Database {m.group(2)} already exists")
            else:
                store.data["databases"].append(m.group(2))
                store.save()
        return ""
    m = re.match(rf"CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?{NAME}[\s(]", body + " ", re.I)
    if m:
        name = qualified(m.group(2), db)
        if name.split(".", 1)[0] not in store.data["databases"]:
            raise CHError(81, f"Database {name.split('.', 1)[0]} does not exist")
        with store.lock:
            if name in tables:
                if not m.group(1):
                    raise CHError(57, f"Table {name} already exists")
            else:
                tables[name] = {"ddl": body, "rows": []}
                store.save()
        return ""
    m = re.match(rf"DROP\s+(TABLE|DATABASE)\s+(IF\s+EXISTS\s+)?{NAME}(\s|$)", body, re.I)
    if m:
        with store.lock:
            if m.group(1).upper() == "TABLE":
                name = qualified(m.group(3), db)
                if name not in tables and not m.group(2):
                    raise CHError(60, f"Table {name} does not exist")
                tables.pop(name, None)
            else:
                store.data["databases"] = [d for d in store.data["databases"] if d != m.group(3)]
                for t in [t for t in tables if t.startswith(m.group(3) + ".")]:
                    tables.pop(t)
            store.save()
        return ""
    m = re.match(rf"INSERT\s+INTO\s+(?:TABLE\s+)?{NAME}(?:\s*\([^)]*\))?\s*(?:FORMAT\s+(\w+))?\s*(.*)$", sql,
                 re.I | re.S)
    if m:
        name = qualified(m.group(1), db)
        if name not in tables:
            raise CHError(60, f"Table {name} does not exist")
        payload = (m.group(3) or "") + data
        rows = []
        if (m.group(2) or "").lower() == "jsoneachrow":
            for line in payload.splitlines():
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as exc:
                        raise CHError(117, f"Cannot parse JSON row: {exc}") from None
        else:
            rows = [{"raw": line} for line in payload.splitlines() if line.strip()]
        with store.lock:
            tables[name]["rows"].extend(rows)
            store.save()
        return ""
    log(f"query accepted without being executed (stand-in): {body[:120]!r}")
    return ""


# --------------------------------------------------------------------------- HTTP
class Handler(BaseHTTPRequestHandler):
    server_version = "clickhouse-standin"
    protocol_version = "HTTP/1.1"
    store: Store
    users: dict
    env: dict

    def log_message(self, fmt: str, *args) -> None:
        log(f'{self.client_address[0]} "{self.requestline}" {args[1] if len(args) > 1 else ""}')

    def reply(self, status: int, text: str, headers: dict | None = None) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-ClickHouse-Server-Display-Name", socket.gethostname())
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def fail(self, err: CHError) -> None:
        status, text = err.render()
        self.reply(status, text, {"X-ClickHouse-Exception-Code": str(err.code)})

    def do_HEAD(self) -> None:  # noqa: N802
        self.handle_any()

    def do_GET(self) -> None:  # noqa: N802
        self.handle_any()

    def do_POST(self) -> None:  # noqa: N802
        self.handle_any()

    def handle_any(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        posted = self.rfile.read(length).decode(errors="replace") if length else ""
        if url.path in ("/ping", "/replicas_status"):
            return self.reply(200, "Ok.\n")
        if url.path not in ("/", "/query"):
            return self.reply(404, f"There is no handle {url.path}\n\nUse / or /ping for health checks.\n")
        if "query" not in query and not posted:
            return self.reply(200, "Ok.\n")
        user, password = credentials(self.headers, query)
        entry = self.users.get(user)
        if (entry is None or not check_password(entry, password)
                or (entry.get("local_only") and not is_loopback(self.client_address[0]))):
            return self.fail(CHError(516, f"{user}: Authentication failed: password is incorrect, or there is "
                                          "no user with such name"))
        db = self.headers.get("X-ClickHouse-Database") or query.get("database") or "default"
        if db not in self.store.data["databases"]:
            return self.fail(CHError(81, f"Database {db} does not exist"))
        if "query" in query:
            sql, data = query["query"], posted
            if data and not re.match(r"^\s*INSERT\b", sql, re.I):
                sql, data = f"{sql} {data}", ""
        else:
            sql, data = posted, ""
            if re.match(r"^\s*INSERT\b", sql, re.I):
                # statement and data in one body: data starts after "FORMAT <name>" or VALUES
                m = re.match(r"(\s*INSERT\b.*?\bFORMAT\s+\w+)\s*\n?(.*)$", sql, re.I | re.S)
                if m:
                    sql, data = m.group(1), m.group(2)
        if self.command == "GET" and not READ_ONLY.match(sql):
            return self.fail(CHError(164, "Cannot execute query in readonly mode. For queries over HTTP, "
                                          "method GET implies readonly. You should use method POST for "
                                          "modifying queries"))
        try:
            result = execute(self.store, sql, data, db, user, self.env)
        except CHError as err:
            return self.fail(err)
        return self.reply(200, result)


def native_port(port: int, stop: threading.Event) -> None:
    """Port 9000 accepts connections and closes them (reachability only, no native protocol)."""
    sock = socket.create_server(("0.0.0.0", port), reuse_port=False)
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            conn, _addr = sock.accept()
            conn.close()
        except TimeoutError:
            continue
        except OSError:
            break


def drop_privileges(uid: int = 101, gid: int = 101) -> None:
    """Like the real entrypoint: own the data directory, then run as the clickhouse user."""
    if os.getuid() != 0:
        return
    data = STATE.parent
    data.mkdir(parents=True, exist_ok=True)
    for path in [data, *data.rglob("*")]:
        try:
            os.chown(path, uid, gid)
        except OSError as exc:
            log(f"warning: cannot chown {path}: {exc}")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def main() -> int:
    env = dict(os.environ)
    drop_privileges()
    users = users_from_xml(CONFIG_DIR)
    users.update(users_from_env(env))
    default_db = env.get("CLICKHOUSE_DB") or "default"
    store = Store(STATE, default_db)
    log(f"ClickHouse STAND-IN {VERSION} (tests only; not ClickHouse); users: {', '.join(sorted(users))}; "
        f"databases: {', '.join(store.data['databases'])}")
    handler = type("BoundHandler", (Handler,), {"store": store, "users": users, "env": env})
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("0.0.0.0", int(env.get("CLICKHOUSE_STANDIN_HTTP_PORT", 8123))), handler)
    stop = threading.Event()
    threading.Thread(target=native_port, args=(int(env.get("CLICKHOUSE_STANDIN_TCP_PORT", 9000)), stop),
                     daemon=True).start()

    def on_signal(signum, _frame) -> None:
        log(f"{signal.Signals(signum).name} received, shutting down")
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log("listening on 0.0.0.0:8123 (HTTP) and 0.0.0.0:9000 (accept only)")
    server.serve_forever(poll_interval=0.5)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
