"""STAND-IN for the MinIO container (tests only, not MinIO): moto's S3 behind a credential check.

moto (Debian's python3-moto) implements the S3 API in memory and by itself accepts any
credentials. This wrapper puts a check in front of it so that the deployment's S3 settings are
really tested: a request must be signed (Signature Version 4, header or presigned URL) with the
access key MINIO_ROOT_USER and the secret MINIO_ROOT_PASSWORD, otherwise it gets MinIO's 403
answers (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied). It also answers MinIO's
health endpoints (/minio/health/live, /minio/health/ready, /minio/health/cluster) and creates
the buckets listed in STANDIN_BUCKETS (comma or space separated) at start.

Every answer carries a Content-Length (moto leaves it out on some). A signed payload hash
(x-amz-content-sha256 other than UNSIGNED-PAYLOAD / STREAMING-*) is checked against the body, as
S3 and MinIO do (XAmzContentSHA256Mismatch).

Accepts the MinIO command line (`[minio] server [--address :9000] [--console-address :9001]
DIR...`); DIR is ignored: objects live in memory and are lost when the container stops.
"""
from __future__ import annotations

import datetime
import hashlib
import logging
import os
import re
import signal
import socket
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sigv4  # noqa: E402  (copied next to this file in the image)

HEALTH = ("/minio/health/live", "/minio/health/ready", "/minio/health/cluster",
          "/minio/health/cluster/read")


def log(msg: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(f"{stamp} {msg}", flush=True)


def parse_args(argv: list[str]) -> dict:
    """MinIO's `server` command line: --address, --console-address, data directories."""
    args = list(argv)
    if args and args[0] == "minio":
        args.pop(0)
    if args and args[0] == "server":
        args.pop(0)
    out = {"address": os.environ.get("MINIO_ADDRESS", ":9000"),
           "console": os.environ.get("MINIO_CONSOLE_ADDRESS", ""), "dirs": []}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--address", "--console-address") and i + 1 < len(args):
            out["address" if arg == "--address" else "console"] = args[i + 1]
            i += 2
            continue
        if arg.startswith("--address="):
            out["address"] = arg.split("=", 1)[1]
        elif arg.startswith("--console-address="):
            out["console"] = arg.split("=", 1)[1]
        elif not arg.startswith("-"):
            out["dirs"].append(arg)
        i += 1
    return out


def split_address(addr: str) -> tuple[str, int]:
    host, _colon, port = addr.rpartition(":")
    return (host.strip("[]") or "0.0.0.0"), int(port or 9000)


def check_credentials(user: str, password: str) -> str | None:
    """MinIO refuses to start with short root credentials."""
    if len(user) < 3:
        return "Invalid credentials: MINIO_ROOT_USER length should be at least 3"
    if len(password) < 8:
        return "Invalid credentials: MINIO_ROOT_PASSWORD length should be at least 8"
    return None


def s3_error(code: str, message: str, status: str = "403 Forbidden") -> tuple[str, bytes]:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><Resource></Resource>"
            "<RequestId>standin</RequestId></Error>").encode()
    return status, body


def authorise(environ: dict, user: str, password: str, region: str | None) -> tuple[str, bytes] | None:
    """None when the request is signed by the root credentials, else a MinIO-like error."""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    query = environ.get("QUERY_STRING", "")
    key = sigv4.access_key_of(headers, query)
    if key is None:
        return s3_error("AccessDenied", "Access Denied.")
    if key != user:
        return s3_error("InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records.")
    auth = headers.get("authorization", "")
    if auth.startswith("AWS ") or "AWSAccessKeyId=" in query:
        return None  # Signature Version 2: only the access key is checked (documented limitation)
    fields = sigv4.parse_authorization(auth)
    scope = fields["Credential"] if fields else dict(urllib.parse.parse_qsl(query)).get("X-Amz-Credential", "")
    parts = scope.split("/")
    if region and len(parts) > 2 and parts[2] != region:
        return s3_error("AuthorizationHeaderMalformed",
                        f"The authorization header is malformed; the region '{parts[2]}' is wrong; "
                        f"expecting '{region}'.", "400 Bad Request")
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or urllib.parse.quote(environ.get("PATH_INFO", "/"))
    raw_path = raw.split("?", 1)[0]
    ok, reason = sigv4.verify(environ["REQUEST_METHOD"], raw_path, query, headers, password)
    if not ok:
        log(f"signature check failed: {reason}")
        return s3_error("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                        "signature you provided. Check your key and signing method.")
    return None


def check_payload(environ: dict) -> tuple[str, bytes] | None:
    """S3 verifies a signed payload hash against the body; a mismatch is 400 XAmzContentSHA256Mismatch.
    The body is read once and put back for moto."""
    import io  # noqa: PLC0415
    declared = environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")
    if not re.fullmatch(r"[0-9a-f]{64}", declared):
        return None  # UNSIGNED-PAYLOAD, STREAMING-* (chunk signatures) or absent
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if hashlib.sha256(body).hexdigest() != declared:
        return s3_error("XAmzContentSHA256Mismatch",
                        "The provided 'x-amz-content-sha256' header does not match what was computed.",
                        "400 Bad Request")
    return None


def for_moto(environ: dict) -> dict:
    """Make a verified request region-neutral, as MinIO is: moto ties buckets to the signing
    region and refuses CreateBucket with region names such as 'auto' (which Langfuse's docs
    suggest for MinIO), so the region is rewritten to us-east-1 and a CreateBucket body
    (LocationConstraint) is dropped after the signature check."""
    import io  # noqa: PLC0415
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth:
        environ["HTTP_AUTHORIZATION"] = re.sub(r"(Credential=[^/]+/\d{8}/)[^/]+/", r"\1us-east-1/", auth)
    segments = [p for p in environ.get("PATH_INFO", "/").split("/") if p]
    if environ.get("REQUEST_METHOD") == "PUT" and len(segments) == 1 and not environ.get("QUERY_STRING"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        environ["CONTENT_LENGTH"] = "0"
        environ["wsgi.input"] = io.BytesIO(b"")
    return environ


def with_length(app, environ: dict, start_response) -> list[bytes]:
    """Run the inner app and give its answer a Content-Length when it has none, as S3 always
    does. moto leaves it out on some answers (an empty 200 to a PUT), so a client (or a TLS
    proxy in front) would have to read until the server hangs up."""
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"], captured["exc_info"] = status, headers, exc_info
        return lambda data: captured.setdefault("written", []).append(data)

    result = app(environ, capture)
    try:
        body = b"".join(captured.get("written", [])) + b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    headers = [(k, v) for k, v in captured["headers"] if k.lower() != "transfer-encoding"]
    if not any(k.lower() == "content-length" for k, _v in headers):
        headers.append(("Content-Length", str(len(body))))
    start_response(captured["status"], headers, captured["exc_info"])
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


class Gate:
    """WSGI middleware: health endpoints, credential check, request log, then moto."""

    def __init__(self, app, user: str, password: str, region: str | None) -> None:
        self.app, self.user, self.password, self.region = app, user, password, region

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        status_seen = []

        def logged_start(status, headers, exc_info=None):
            status_seen.append(status.split()[0])
            return start_response(status, headers, exc_info)

        try:
            if path in HEALTH:
                logged_start("200 OK", [("Content-Length", "0"), ("Server", "s3-standin")])
                return [b""]
            if path.startswith("/moto-api"):
                body = b"Not Found"
                logged_start("404 Not Found", [("Content-Length", str(len(body)))])
                return [body]
            denied = authorise(environ, self.user, self.password, self.region) or check_payload(environ)
            if denied:
                status, body = denied
                logged_start(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
                                      ("Server", "s3-standin")])
                return [body]
            return with_length(self.app, for_moto(environ), logged_start)
        finally:
            query = environ.get("QUERY_STRING", "")
            log(f'{environ.get("REMOTE_ADDR", "-")} "{method} {path}{"?" + query if query else ""}" '
                f'{status_seen[0] if status_seen else "-"}')


def console_port(host: str, port: int) -> None:
    """MinIO's console port: accepts and closes connections (no console in the stand-in)."""
    sock = socket.create_server((host, port))
    while True:
        conn, _addr = sock.accept()
        conn.close()


def create_buckets(names: list[str], host: str, port: int, user: str, password: str) -> None:
    """Create the STANDIN_BUCKETS through the S3 API itself (so they pass the same gate)."""
    import urllib.request  # noqa: PLC0415
    for name in names:
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '::') else host}:{port}/{name}"
        headers = sigv4.sign_request("PUT", url, user, password, "us-east-1")
        req = urllib.request.Request(url, data=b"", method="PUT", headers=headers)
        try:
            urllib.request.urlopen(req, timeout=10).close()
            log(f"bucket {name} created")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            if "BucketAlreadyOwnedByYou" in detail or "BucketAlreadyExists" in detail:
                log(f"bucket {name} exists")
            else:
                log(f"creating bucket {name} failed: HTTP {exc.code} {detail[:200]}")


def main(argv: list[str]) -> int:
    args = parse_args(argv[1:])
    user = os.environ.get("MINIO_ROOT_USER") or os.environ.get("MINIO_ACCESS_KEY") or "minioadmin"
    password = os.environ.get("MINIO_ROOT_PASSWORD") or os.environ.get("MINIO_SECRET_KEY") or "minioadmin"
    region = os.environ.get("MINIO_REGION") or os.environ.get("MINIO_SITE_REGION") or None
    problem = check_credentials(user, password)
    if problem:
        log(f"ERROR Unable to validate credentials inherited from the shell environment: {problem}")
        return 1
    from moto import __version__ as moto_version  # noqa: PLC0415
    from moto.moto_server.werkzeug_app import create_backend_app  # noqa: PLC0415
    from werkzeug.serving import make_server  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the Gate logs one line per request
    host, port = split_address(args["address"])
    app = Gate(create_backend_app("s3"), user, password, region)  # S3 only, whatever the Host
    server = make_server(host, port, app, threaded=True)
    log(f"S3 STAND-IN (moto {moto_version}; tests only, not MinIO) on {host}:{port}; "
        f"data directories {args['dirs'] or '-'} ignored (objects are kept in memory)")
    if args["console"]:
        chost, cport = split_address(args["console"])
        threading.Thread(target=console_port, args=(chost, cport), daemon=True).start()
    buckets = [b for b in re.split(r"[,\s]+", os.environ.get("STANDIN_BUCKETS", "")) if b]
    if buckets:
        threading.Timer(0.2, create_buckets, args=(buckets, host, port, user, password)).start()

    def on_signal(signum, _frame) -> None:
        log(f"{signal.Signals(signum).name} received, shutting down")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
