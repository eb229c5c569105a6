"""The guard (tests/unit/conftest.py): every port of the site lab's table is busy during the unit tests."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import td_launch

from tests.unit.lab_ports import LAB_TABLE, hold_port, lab_port_tables, site_lab_ports


def test_every_port_of_the_site_labs_table_is_held(site_lab_ports_held: dict[str, int]) -> None:
    assert site_lab_ports_held == site_lab_ports(LAB_TABLE)
    assert {"verifier", "registrar", "guest_ssh", "guest_agent", "guest_session"} <= set(site_lab_ports_held)
    for name, port in site_lab_ports_held.items():
        assert td_launch.port_open(port), f"site lab port {name} ({port}) is free while the unit tests run"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(OSError):
            sock.bind(("127.0.0.1", port))


def test_a_free_port_is_none_of_the_labs(site_lab_ports_held: dict[str, int]) -> None:
    ports = {td_launch.free_port() for _unused in range(20)}
    assert not ports & set(site_lab_ports_held.values())
    for port in ports:
        sock = hold_port(port)
        assert sock is not None
        sock.close()


def test_a_held_port_is_left_to_its_holder(site_lab_ports_held: dict[str, int]) -> None:
    assert hold_port(site_lab_ports_held["guest_session"]) is None


def test_two_labs_share_no_port() -> None:
    """The labs share this machine's loopback (host network): a port in two rows would make them meet."""
    labs = lab_port_tables(LAB_TABLE)
    assert {"site", "e2e"} <= set(labs)
    names = {lab: set(ports) for lab, ports in labs.items()}
    assert all(n == names["site"] for n in names.values()), f"every lab needs the same ports: {names}"
    for lab, ports in labs.items():
        assert len(set(ports.values())) == len(ports), f"{lab} uses a port twice: {ports}"
        for other, other_ports in labs.items():
            if other != lab:
                assert not set(ports.values()) & set(other_ports.values()), f"{lab} and {other} share a port"


NOT_A_PORT = "kit_lab_port_table.site.guest_ssh is not a TCP port"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kit_lab_name: site\n", "no kit_lab_port_table"),
        ("kit_lab_port_table: {}\n", "no kit_lab_port_table"),
        ("kit_lab_port_table:\n  e2e: {guest_ssh: 12222}\n", "has no site lab"),
        ("kit_lab_port_table:\n  site: []\n", "kit_lab_port_table.site has no ports"),
        ("kit_lab_port_table:\n  site:\n    guest_ssh: 70000\n", NOT_A_PORT),
        ("kit_lab_port_table:\n  site:\n    guest_ssh: '{{ x }}'\n", NOT_A_PORT),
        ("kit_lab_port_table:\n  site:\n    guest_ssh: true\n", NOT_A_PORT),
        ("- a list\n", "no kit_lab_port_table"),
    ],
)
def test_a_broken_port_table_is_named(tmp_path: Path, text: str, needle: str) -> None:
    table = tmp_path / "kit_lab.yml"
    table.write_text(text)
    with pytest.raises(ValueError, match=needle):
        site_lab_ports(table)
