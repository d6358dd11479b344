"""Logic of the stand-in images (tests/standins) that needs no network, database or Docker.

The services themselves are exercised by the molecule scenarios that run the images; these
tests pin down the parsing and checking rules they share with the real Langfuse, ClickHouse and
MinIO containers (URL-encoded credentials, required settings, SigV4, ClickHouse error answers).
"""
import base64
import datetime
import hashlib
import importlib.util
import sys
from pathlib import Path

import pytest

STANDINS = Path(__file__).resolve().parents[1] / "standins"
sys.path.insert(0, str(STANDINS / "common"))


def load(name: str, relpath: str):
    spec = importlib.util.spec_from_file_location(name, STANDINS / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lf = load("langfuse_standin", "langfuse/langfuse_standin.py")
ch = load("clickhouse_standin", "clickhouse/clickhouse_standin.py")
s3 = load("s3_standin", "s3/s3_standin.py")
sigv4 = load("sigv4", "common/sigv4.py")

HEX64 = "ab" * 32
WEB_ENV = {
    "DATABASE_URL": "postgresql://langfuse:pw@db:5432/langfuse",
    "REDIS_CONNECTION_STRING": "redis://:pw@redis:6379",
    "CLICKHOUSE_URL": "http://clickhouse:8123", "CLICKHOUSE_USER": "langfuse", "CLICKHOUSE_PASSWORD": "pw",
    "LANGFUSE_S3_EVENT_UPLOAD_BUCKET": "events", "SALT": "salt", "ENCRYPTION_KEY": HEX64,
    "NEXTAUTH_URL": "https://langfuse.example.test", "NEXTAUTH_SECRET": "secret",
}


# --------------------------------------------------------------------------- Langfuse settings
def test_database_url_decodes_credentials_and_ignores_prisma_parameters():
    kw = lf.parse_database_url("postgresql://lf%40user:p%40ss%3Aw%2Frd%25@db.internal:6432/lang%20fuse"
                               "?connection_limit=5&pool_timeout=10&pgbouncer=true&sslmode=require&schema=lf")
    assert kw == {"host": "db.internal", "port": 6432, "user": "lf@user", "password": "p@ss:w/rd%",
                  "dbname": "lang fuse", "sslmode": "require", "options": "-c search_path=lf"}


def test_database_url_defaults_and_wrong_scheme():
    kw = lf.parse_database_url("postgres://langfuse@db/langfuse")
    assert kw["port"] == 5432 and "password" not in kw
    with pytest.raises(lf.ConfigError, match="postgresql://"):
        lf.parse_database_url("mysql://u:p@db/x")


def test_database_url_built_from_parts_like_the_entrypoint():
    url = lf.database_url({"DATABASE_HOST": "db:5432", "DATABASE_USERNAME": "lf", "DATABASE_PASSWORD": "a/b@c",
                           "DATABASE_NAME": "langfuse", "DATABASE_ARGS": "sslmode=disable"})
    assert url == "postgresql://lf:a%2Fb%40c@db:5432/langfuse?sslmode=disable"
    assert lf.parse_database_url(url)["password"] == "a/b@c"


def test_redis_settings_from_connection_string_or_parts():
    cfg = lf.parse_redis_config({"REDIS_CONNECTION_STRING": "redis://lf:p%40ss@redis:6380/2"})
    assert cfg == {"host": "redis", "port": 6380, "username": "lf", "password": "p@ss", "db": 2}
    cfg = lf.parse_redis_config({"REDIS_HOST": "redis", "REDIS_AUTH": "pw", "REDIS_USERNAME": "lf"})
    assert cfg == {"host": "redis", "port": 6379, "username": "lf", "password": "pw", "db": 0}
    assert lf.parse_redis_config({"REDIS_CONNECTION_STRING": "rediss://redis"})["ssl"] is True
    with pytest.raises(lf.ConfigError):
        lf.parse_redis_config({})


def test_basic_auth_parsing():
    header = "Basic " + base64.b64encode(b"pk-lf-1:sk:with:colons").decode()
    assert lf.parse_basic_auth(header) == ("pk-lf-1", "sk:with:colons")
    assert lf.parse_basic_auth("Bearer x") is None
    assert lf.parse_basic_auth("Basic !!!") is None
    assert lf.parse_basic_auth(None) is None


@pytest.mark.parametrize("key, ok", [(HEX64, True), ("AB" * 32, True), ("ab" * 31, False), ("zz" * 32, False),
                                     (None, False), ("", False)])
def test_encryption_key_must_be_64_hex_characters(key, ok):
    assert (lf.check_encryption_key(key) is None) is ok


def test_validate_env_accepts_a_complete_web_environment():
    assert lf.validate_env("web", WEB_ENV) == []


def test_validate_env_reports_what_langfuse_would_refuse():
    env = dict(WEB_ENV, CLICKHOUSE_PASSWORD="", NEXTAUTH_URL="not a url", ENCRYPTION_KEY="short")
    del env["SALT"]
    errors = "\n".join(lf.validate_env("web", env))
    for needle in ("CLICKHOUSE_PASSWORD is required", "NEXTAUTH_URL", "ENCRYPTION_KEY must be 256 bits", "SALT"):
        assert needle in errors
    # the worker needs neither NEXTAUTH_* nor SALT
    worker_env = {k: v for k, v in WEB_ENV.items() if not k.startswith(("NEXTAUTH", "SALT"))}
    assert lf.validate_env("worker", worker_env) == []


def test_v4_defaults_to_events_only_and_v3_to_legacy():
    assert lf.write_mode({}, "4.0.0") == "events_only"
    assert lf.write_mode({"LANGFUSE_MIGRATION_V4_WRITE_MODE": "dual"}, "4.0.1") == "dual"
    assert lf.write_mode({"LANGFUSE_MIGRATION_V4_WRITE_MODE": "dual"}, "3.120.0") == "legacy"


def test_a_new_salt_invalidates_stored_secret_keys():
    assert lf.secret_hash("sk-lf-1", "salt-a") != lf.secret_hash("sk-lf-1", "salt-b")


def test_s3_object_urls_path_and_virtual_host_style():
    assert lf.s3_object_url("http://minio:9000", "events", "p/trace/t 1/e.json", "auto", True) == \
        "http://minio:9000/events/p/trace/t%201/e.json"
    assert lf.s3_object_url("https://s3.example.test", "events", "k", "eu-west-1", False) == \
        "https://events.s3.example.test/k"
    assert lf.s3_object_url(None, "b", "k", "eu-west-1", False) == "https://b.s3.eu-west-1.amazonaws.com/k"


# --------------------------------------------------------------------------- SigV4
def test_sigv4_matches_the_aws_documentation_example():
    # "GET Object" example of the S3 SigV4 documentation (header-based authentication)
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    headers = {"Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9",
               "x-amz-content-sha256": hashlib.sha256(b"").hexdigest(), "x-amz-date": "20130524T000000Z"}
    sts = sigv4.string_to_sign("GET", "/test.txt", "", headers,
                               ["host", "range", "x-amz-content-sha256", "x-amz-date"],
                               hashlib.sha256(b"").hexdigest(), "20130524T000000Z",
                               "20130524/us-east-1/s3/aws4_request")
    import hmac
    signature = hmac.new(sigv4.signing_key(secret, "20130524", "us-east-1", "s3"), sts.encode(),
                         hashlib.sha256).hexdigest()
    assert signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_sigv4_sign_then_verify_and_tampering():
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    url = "http://minio:9000/events/a%20b/c.json?x-id=PutObject"
    headers = sigv4.sign_request("PUT", url, "langfuse", "secret-123", "auto", body=b"{}", now=now)
    assert sigv4.access_key_of(headers, "") == "langfuse"
    assert sigv4.verify("PUT", "/events/a%20b/c.json", "x-id=PutObject", headers, "secret-123") == (True, "ok")
    assert not sigv4.verify("PUT", "/events/a%20b/c.json", "x-id=PutObject", headers, "other")[0]
    assert not sigv4.verify("PUT", "/events/other.json", "x-id=PutObject", headers, "secret-123")[0]


# --------------------------------------------------------------------------- S3 stand-in
def test_minio_command_line_and_credentials():
    args = s3.parse_args(["minio", "server", "--address", ":9100", "--console-address=:9101", "/data"])
    assert args == {"address": ":9100", "console": ":9101", "dirs": ["/data"]}
    assert s3.split_address(":9000") == ("0.0.0.0", 9000)
    assert s3.check_credentials("langfuse", "12345678") is None
    assert "at least 8" in s3.check_credentials("langfuse", "short")


def _environ(method, path, query, headers):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_URI": path}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    return environ


def test_s3_gate_checks_key_and_signature():
    url = "http://minio:9000/events/k.json"
    good = sigv4.sign_request("GET", url, "langfuse", "secret-123", "us-east-1")
    assert s3.authorise(_environ("GET", "/events/k.json", "", good), "langfuse", "secret-123", None) is None
    assert b"SignatureDoesNotMatch" in s3.authorise(_environ("GET", "/events/k.json", "", good), "langfuse",
                                                    "other-secret", None)[1]
    other = sigv4.sign_request("GET", url, "intruder", "secret-123", "us-east-1")
    assert b"InvalidAccessKeyId" in s3.authorise(_environ("GET", "/events/k.json", "", other), "langfuse",
                                                 "secret-123", None)[1]
    assert b"AccessDenied" in s3.authorise(_environ("GET", "/events/k.json", "", {}), "langfuse", "x", None)[1]
    status, _body = s3.authorise(_environ("GET", "/events/k.json", "", good), "langfuse", "secret-123", "eu-west-1")
    assert status.startswith("400")


# --------------------------------------------------------------------------- ClickHouse stand-in
def test_clickhouse_credentials_in_the_three_accepted_forms():
    class H(dict):
        def get(self, k, d=None):
            return super().get(k, d)
    assert ch.credentials(H({"X-ClickHouse-User": "u", "X-ClickHouse-Key": "p"}), {}) == ("u", "p")
    basic = "Basic " + base64.b64encode(b"u:p").decode()
    assert ch.credentials(H({"Authorization": basic}), {}) == ("u", "p")
    assert ch.credentials(H(), {"user": "u", "password": "p"}) == ("u", "p")
    assert ch.credentials(H(), {}) == ("default", "")


def test_clickhouse_users_from_env_and_xml(tmp_path):
    assert ch.users_from_env({}) == {"default": {"password": "", "local_only": True}}
    assert ch.users_from_env({"CLICKHOUSE_USER": "lf", "CLICKHOUSE_PASSWORD": "pw"}) == \
        {"lf": {"password": "pw", "local_only": False}}
    (tmp_path / "users.d").mkdir()
    digest = hashlib.sha256(b"s3cret").hexdigest()
    (tmp_path / "users.d" / "lf.xml").write_text(
        f"<clickhouse><users><lf><password_sha256_hex>{digest}</password_sha256_hex></lf>"
        "<ro><password>plain</password></ro></users></clickhouse>")
    users = ch.users_from_xml(tmp_path)
    assert ch.check_password(users["lf"], "s3cret") and not ch.check_password(users["lf"], "x")
    assert ch.check_password(users["ro"], "plain")


def test_clickhouse_statements_and_errors(tmp_path):
    store = ch.Store(tmp_path / "state.json", "langfuse")

    def run(sql, data=""):
        return ch.execute(store, sql, data, "default", "lf", {})

    assert run("SELECT 1") == "1\n"
    assert run("SELECT version()") == f"{ch.VERSION}\n"
    assert run("CREATE TABLE IF NOT EXISTS `events` (id String) ENGINE = MergeTree ORDER BY id") == ""
    assert run("INSERT INTO events FORMAT JSONEachRow", '{"id": "a"}\n{"id": "b"}\n') == ""
    assert run("SELECT count() FROM default.events") == "2\n"
    assert run("EXISTS TABLE events") == "1\n"
    assert "langfuse" in run("SHOW DATABASES")
    # kept across a restart (the state file is the "data directory")
    assert ch.execute(ch.Store(tmp_path / "state.json", "langfuse"), "SELECT count() FROM events", "",
                      "default", "lf", {}) == "2\n"
    for sql, code in (("CREATE TABLE t ON CLUSTER default (a String) ENGINE = MergeTree", 139),
                      ("BACKUP DATABASE default TO S3('http://x/b')", 48),
                      ("SELECT count() FROM missing", 60),
                      ("CREATE TABLE events (id String) ENGINE = MergeTree", 57)):
        with pytest.raises(ch.CHError) as err:
            run(sql)
        assert err.value.code == code
    status, text = ch.CHError(516, "lf: Authentication failed").render()
    assert status == 403 and text.startswith("Code: 516. DB::Exception: lf: Authentication failed")


# --------------------------------------------------------------------------- S3 stand-in: what pgBackRest and rclone send
def _signed_environ(method, path, query="", body=b"", extra=None, secret="secret-123"):
    url = f"https://s3.test:9443{path}" + (f"?{query}" if query else "")
    headers = sigv4.sign_request(method, url, "langfuse", secret, "us-east-1", body=body, headers=extra or {})
    environ = _environ(method, path, query, headers)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = __import__("io").BytesIO(body)
    return environ


def _through_gate(environ):
    seen = {}

    def inner(env, start_response):
        seen["body"] = env["wsgi.input"].read(int(env.get("CONTENT_LENGTH") or 0))
        seen["query"] = env["QUERY_STRING"]
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    statuses = []
    out = b"".join(s3.Gate(inner, "langfuse", "secret-123", None)(environ, lambda st, h, e=None: statuses.append(st)))
    return statuses[0], out, seen


@pytest.mark.parametrize("method,path,query,body,extra", [
    ("GET", "/backups", "list-type=2&prefix=pgbackrest%2Farchive%2F&delimiter=%2F", b"", None),   # ListObjectsV2
    ("POST", "/backups/big.dump", "uploads=", b"", None),                                      # CreateMultipartUpload
    ("PUT", "/backups/big.dump", "partNumber=1&uploadId=abc", b"x" * 1000, None),               # UploadPart
    ("POST", "/backups", "delete=", b"<Delete><Object><Key>a</Key></Object></Delete>", None),   # DeleteObjects
    ("HEAD", "/backups/pgbackrest/backup.info", "", b"", None),                                  # HEAD
    ("GET", "/backups/pgbackrest/backup.info", "", b"", {"Range": "bytes=0-99"}),               # ranged GET
])
def test_s3_gate_passes_what_pgbackrest_and_rclone_send(method, path, query, body, extra):
    status, out, seen = _through_gate(_signed_environ(method, path, query, body, extra))
    assert status.startswith("200"), out
    assert seen["body"] == body and seen["query"] == query


def test_s3_gate_refuses_a_body_that_does_not_match_its_signed_hash():
    environ = _signed_environ("PUT", "/backups/k", body=b"original")
    environ["wsgi.input"] = __import__("io").BytesIO(b"tampered")
    status, out, seen = _through_gate(environ)
    assert status.startswith("400") and b"XAmzContentSHA256Mismatch" in out and not seen


def test_s3_gate_refuses_a_wrong_secret_for_every_operation():
    status, out, _headers = _through_gate(_signed_environ("POST", "/backups", "delete=", b"<Delete/>", secret="wrong"))
    assert status.startswith("403") and b"SignatureDoesNotMatch" in out


def test_s3_answers_always_carry_a_content_length():
    def no_length(env, start_response):
        start_response("200 OK", [("ETag", '"x"')])
        return [b"ab", b"c"]

    seen = []
    body = s3.with_length(no_length, {"REQUEST_METHOD": "PUT"}, lambda st, h, e=None: seen.append(h))
    assert body == [b"abc"] and ("Content-Length", "3") in seen[0]
    assert s3.with_length(no_length, {"REQUEST_METHOD": "HEAD"}, lambda st, h, e=None: None) == [b""]


def test_s3_unsigned_payload_is_not_hashed():
    environ = _signed_environ("PUT", "/backups/k", body=b"data")
    environ["HTTP_X_AMZ_CONTENT_SHA256"] = "UNSIGNED-PAYLOAD"
    assert s3.check_payload(environ) is None


# --------------------------------------------------------------------------- ClickHouse stand-in: BACKUP wiring
@pytest.fixture()
def fake_s3():
    """A local HTTP server that answers like S3: 200 for the right signature, 403 otherwise."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.server.seen.append(self.path)
            path, _sep, query = self.path.partition("?")
            ok, _reason = sigv4.verify("GET", path, query, dict(self.headers), "s3-secret")
            self.send_response(200 if ok else 403)
            body = b"<ListBucketResult/>" if ok else b"<Error><Code>SignatureDoesNotMatch</Code></Error>"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_clickhouse_backup_checks_the_s3_target_then_refuses(fake_s3, capsys):
    url = f"http://127.0.0.1:{fake_s3.server_port}/backups/clickhouse/clickhouse-default-20261201T020000Z/"
    with pytest.raises(ch.CHError) as err:
        ch.execute(None, f"BACKUP DATABASE `default` TO S3('{url}', 'lf-key', 's3-secret')", "", "default", "lf", {})
    assert err.value.code == 48 and "credentials accepted" in str(err.value)
    assert fake_s3.seen and fake_s3.seen[0].startswith("/backups?")
    assert "prefix=clickhouse%2Fclickhouse-default-20261201T020000Z%2F" in fake_s3.seen[0]
    logged = capsys.readouterr().out
    assert "[HIDDEN]" in logged and "s3-secret" not in logged
    with pytest.raises(ch.CHError) as err:
        ch.execute(None, f"RESTORE DATABASE default AS restored FROM S3('{url}', 'lf-key', 'wrong')", "",
                   "default", "lf", {})
    assert err.value.code == 499 and "SignatureDoesNotMatch" in str(err.value)
    with pytest.raises(ch.CHError) as err:
        ch.execute(None, "BACKUP DATABASE default TO S3('http://127.0.0.1:1/b/x/', 'k', 's')", "", "default", "lf", {})
    assert err.value.code == 499 and "unreachable" in str(err.value)


def test_worker_queue_consumption_stuck_like_langfuse():
    stuck = lf.queue_consumption_stuck
    assert stuck(1000.0, None, None, 1) == (False, None)  # no consumer registered: never stuck
    assert stuck(1000.0, 950.0, None, 1) == (False, 50)  # grace from registration
    assert stuck(1000.0, 900.0, None, 1) == (True, 100)
    assert stuck(1000.0, 100.0, 980.0, 1) == (False, 20)  # a recent job resets the clock
    assert stuck(1000.0, 100.0, 900.0, 1) == (True, 100)
    assert stuck(1000.0, 940.0, None, 1) == (False, 60)  # exactly the threshold is not yet stuck
