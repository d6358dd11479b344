"""AWS Signature Version 4 for S3, signing and verifying (standard library only).

Shared by the Langfuse stand-in (a client: PUT/GET of event objects) and the S3 stand-in (a
server: checks that a request was signed with the configured access key and secret). Follows
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html for
the S3 flavour: the canonical URI is the path as sent (not normalised, not encoded twice) and
the payload hash is the value of the x-amz-content-sha256 header.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import urllib.parse

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def uri_encode(value: str, safe: str = "-_.~") -> str:
    """RFC 3986 encoding as SigV4 wants it (upper-case hex, '~' kept)."""
    return urllib.parse.quote(value, safe=safe)


def canonical_query(query: str, drop: tuple[str, ...] = ()) -> str:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    encoded = sorted((uri_encode(k), uri_encode(v)) for k, v in pairs if k not in drop)
    return "&".join(f"{k}={v}" for k, v in encoded)


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _norm_header_value(value: str) -> str:
    return " ".join(value.strip().split())


def string_to_sign(method: str, raw_path: str, query: str, headers: dict[str, str],
                   signed_headers: list[str], payload_hash: str, amz_date: str, scope: str,
                   drop_query: tuple[str, ...] = ()) -> str:
    lower = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(f"{h}:{_norm_header_value(lower.get(h, ''))}\n" for h in signed_headers)
    canonical_request = "\n".join([
        method.upper(),
        raw_path or "/",
        canonical_query(query, drop_query),
        canonical_headers,
        ";".join(signed_headers),
        payload_hash,
    ])
    return "\n".join([ALGORITHM, amz_date, scope,
                      hashlib.sha256(canonical_request.encode()).hexdigest()])


def sign_request(method: str, url: str, access_key: str, secret_key: str, region: str,
                 body: bytes = b"", headers: dict[str, str] | None = None,
                 now: datetime.datetime | None = None, service: str = "s3") -> dict[str, str]:
    """Headers (Host, X-Amz-Date, X-Amz-Content-Sha256, Authorization) for a signed request.

    ``url`` must already be percent-encoded the way it is sent.
    """
    parts = urllib.parse.urlsplit(url)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    out = dict(headers or {})
    out["Host"] = parts.netloc
    out["X-Amz-Date"] = amz_date
    out["X-Amz-Content-Sha256"] = payload_hash
    signed = sorted(k.lower() for k in out)
    scope = f"{date}/{region}/{service}/aws4_request"
    sts = string_to_sign(method, parts.path, parts.query, out, signed, payload_hash, amz_date, scope)
    signature = hmac.new(signing_key(secret_key, date, region, service), sts.encode(),
                         hashlib.sha256).hexdigest()
    out["Authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope}, "
                            f"SignedHeaders={';'.join(signed)}, Signature={signature}")
    return out


def parse_authorization(value: str) -> dict[str, str] | None:
    """Fields of an ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` header."""
    if not value.startswith(ALGORITHM + " "):
        return None
    fields = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        key, _eq, val = part.strip().partition("=")
        fields[key] = val
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    return fields


def access_key_of(headers: dict[str, str], query: str) -> str | None:
    """The access key id a request claims (header or presigned-URL form; SigV2 too)."""
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization", "")
    fields = parse_authorization(auth)
    if fields:
        return fields["Credential"].split("/")[0]
    if auth.startswith("AWS "):  # Signature Version 2
        return auth[4:].rsplit(":", 1)[0]
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if "X-Amz-Credential" in params:
        return params["X-Amz-Credential"].split("/")[0]
    if "AWSAccessKeyId" in params:
        return params["AWSAccessKeyId"]
    return None


def verify(method: str, raw_path: str, query: str, headers: dict[str, str],
           secret_key: str) -> tuple[bool, str]:
    """Check a SigV4 signature (Authorization header or presigned query). (ok, reason)."""
    lower = {k.lower(): v for k, v in headers.items()}
    fields = parse_authorization(lower.get("authorization", ""))
    if fields:
        credential = fields["Credential"]
        signed = fields["SignedHeaders"].split(";")
        given = fields["Signature"]
        amz_date = lower.get("x-amz-date", "")
        payload_hash = lower.get("x-amz-content-sha256", UNSIGNED)
        drop: tuple[str, ...] = ()
    else:
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            return False, "no Signature Version 4 found (SigV2 is not verified by this stand-in)"
        credential = params.get("X-Amz-Credential", "")
        signed = params.get("X-Amz-SignedHeaders", "host").split(";")
        given = params.get("X-Amz-Signature", "")
        amz_date = params.get("X-Amz-Date", "")
        payload_hash = UNSIGNED
        drop = ("X-Amz-Signature",)
    try:
        _key, date, region, service, _term = credential.split("/")
    except ValueError:
        return False, "malformed credential scope"
    scope = f"{date}/{region}/{service}/aws4_request"
    sts = string_to_sign(method, raw_path, query, headers, signed, payload_hash, amz_date, scope, drop)
    expected = hmac.new(signing_key(secret_key, date, region, service), sts.encode(),
                        hashlib.sha256).hexdigest()
    if hmac.compare_digest(expected, given):
        return True, "ok"
    return False, "signature does not match"
