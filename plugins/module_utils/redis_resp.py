# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Redis client (RESP2 over TCP, optionally TLS) for the collection's modules.

Standard library only, so that it runs on any managed host with python3 and needs no package.
It exists so that a password reaches Redis in a module argument (hidden by no_log) instead of
a command line or an environment variable, both of which other local users can read.
"""

from __future__ import annotations

import socket
import ssl


class RedisError(Exception):
    """A reply of Redis that is an error (``-ERR ...``, ``-WRONGPASS ...``)."""


class RedisUnreachable(Exception):
    """No connection, no reply, or a TLS handshake that failed."""


def encode_command(args):
    """A command (list of str/bytes/int) as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        else:
            data = str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self._sock = sock
        self._buf = b""

    def _fill(self):
        try:
            chunk = self._sock.recv(65536)
        except (OSError, ssl.SSLError) as exc:
            raise RedisUnreachable("no reply: %s" % (getattr(exc, "strerror", None) or exc)) from exc
        if not chunk:
            raise RedisUnreachable("the server closed the connection")
        self._buf += chunk

    def line(self):
        while b"\r\n" not in self._buf:
            self._fill()
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def exact(self, size):
        while len(self._buf) < size + 2:
            self._fill()
        data, self._buf = self._buf[:size], self._buf[size + 2:]
        return data

    def reply(self):
        """One reply: str (simple), int, str/None (bulk), list (array); errors raise RedisError."""
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            raise RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.exact(size).decode("utf-8", "replace")
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.reply() for _index in range(size)]
        raise RedisUnreachable("not a Redis reply: %r" % line[:80])


def parse_reply(data):
    """Parse one complete reply from bytes (for tests)."""

    class _Buffer:
        def __init__(self, payload):
            self.payload = payload

        def recv(self, _size):
            payload, self.payload = self.payload, b""
            return payload

    return _Reader(_Buffer(data)).reply()


class RedisConnection:
    """``with RedisConnection(host, port, ...) as conn: conn.call('PING')``"""

    def __init__(self, host, port, user=None, password=None, timeout=5.0, tls=False, ca_file=None,
                 cert_file=None, key_file=None, server_name=None):
        self.host, self.port, self.timeout = host, int(port), float(timeout)
        self.user, self.password = user, password
        self.tls, self.ca_file, self.cert_file, self.key_file = tls, ca_file, cert_file, key_file
        self.server_name = server_name
        self._sock = None
        self._reader = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self):
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise RedisUnreachable("cannot connect to %s:%s: %s" % (
                self.host, self.port, getattr(exc, "strerror", None) or exc)) from exc
        sock.settimeout(self.timeout)
        if self.tls:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file:
                context.load_cert_chain(self.cert_file, self.key_file)
            try:
                sock = context.wrap_socket(sock, server_hostname=self.server_name or self.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise RedisUnreachable("TLS handshake with %s:%s failed: %s" % (self.host, self.port, exc)) from exc
        self._sock = sock
        self._reader = _Reader(sock)
        if self.password:
            auth = ["AUTH", self.user, self.password] if self.user else ["AUTH", self.password]
            self.call(*auth)

    def call(self, *args):
        try:
            self._sock.sendall(encode_command(args))
        except (OSError, ssl.SSLError) as exc:
            raise RedisUnreachable("cannot send to %s:%s: %s" % (
                self.host, self.port, getattr(exc, "strerror", None) or exc)) from exc
        return self._reader.reply()

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
