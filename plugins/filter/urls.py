# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pieces of URLs and DSNs: hosts (IPv6 in brackets) and percent-encoded credentials."""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - unit tests run with ansible installed
    class AnsibleFilterError(Exception):
        pass


def url_host(address):
    """A host as it appears in a URL: an IPv6 address in brackets, anything else unchanged."""
    if not isinstance(address, str) or not address:
        raise AnsibleFilterError(f"url_host: expected a host name or address, got {address!r}")
    text = address.strip("[]")
    try:
        if ipaddress.ip_address(text).version == 6:
            return f"[{text}]"
    except ValueError:
        pass
    return address


def url_quote(value):
    """Percent-encode a URL component (user, password, database name): everything but letters,
    digits and ``_.-~``, so that ``/``, ``:``, ``@``, ``#``, ``?``, ``%`` and spaces survive
    inside ``scheme://user:password@host/db``."""
    if value is None:
        raise AnsibleFilterError("url_quote: the value is undefined or null")
    return quote(str(value), safe="")


class FilterModule:
    """llmops.langfuse URL filters."""

    def filters(self):
        return {"url_host": url_host, "url_quote": url_quote}
