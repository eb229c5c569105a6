from __future__ import annotations

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils.kit_validate import (
    is_host_address,
    is_ip_address,
    is_port,
)


@pytest.mark.parametrize(
    "value", ["127.0.0.1", "10.0.2.2", "::1", "fe80::1", "localhost", "verifier.lab.example", "a-b.c"]
)
def test_accepts_addresses(value: str) -> None:
    assert is_host_address(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "127.0.0.256",
        "1.2.3",
        "999.1.1.1",
        "host name",
        "-lead.example",
        "trail-.example",
        "a..b",
        "127.0.0.1:8881",
        "[::1]",
        "x" * 64,
        None,
        8881,
        "http://127.0.0.1",
    ],
)
def test_rejects_malformed_addresses(value: object) -> None:
    assert not is_host_address(value)


def test_ip_only() -> None:
    assert is_ip_address("192.168.1.1")
    assert not is_ip_address("localhost")


@pytest.mark.parametrize(
    ("value", "ok"), [(1, True), (65535, True), (0, False), (65536, False), (True, False), ("8881", False)]
)
def test_port(value: object, ok: bool) -> None:
    assert is_port(value) is ok
