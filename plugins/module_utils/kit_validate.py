"""Input checks shared by the kit's roles (through a Jinja test plugin), modules and tests."""

from __future__ import annotations

import ipaddress
import re

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 1-63 chars each.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def is_ip_address(value: object) -> bool:
    """True for a literal IPv4 or IPv6 address (no port, no brackets)."""
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_host_name(value: object) -> bool:
    """True for an RFC 1123 host name; an all-numeric dotted name must be a valid IPv4 address instead."""
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False
    return all(_LABEL.match(label) for label in labels)


def is_host_address(value: object) -> bool:
    """True for an address a service can listen on or connect to: an IP address or a host name."""
    return is_ip_address(value) or is_host_name(value)


def is_port(value: object) -> bool:
    """True for a TCP port number 1-65535 (ints only; bool is rejected)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
