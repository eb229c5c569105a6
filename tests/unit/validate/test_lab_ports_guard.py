"""The guard (tests/unit/conftest.py): every port of the site lab's table is busy during the unit tests."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import td_launch

from tests.unit.lab_ports import LAB_TABLE, hold_port, site_lab_ports


def test_every_port_of_the_site_labs_table_is_held(site_lab_ports_held: dict[str, int]) -> None:
    assert site_lab_ports_held == site_lab_ports(LAB_TABLE)
    assert {"verifier", "registrar", "guest_ssh", "guest_agent", "guest_session"} <= set(site_lab_ports_held)
    for name, port in site_lab_ports_held.items():
        assert td_launch.port_open(port), f"kit_lab_ports.{name} ({port}) is free while the unit tests run"
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


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kit_lab_name: site\n", "no kit_lab_ports table"),
        ("kit_lab_ports: {}\n", "no kit_lab_ports table"),
        ("kit_lab_ports:\n  guest_ssh: 70000\n", "kit_lab_ports.guest_ssh is not a TCP port"),
        ("kit_lab_ports:\n  guest_ssh: '{{ x }}'\n", "kit_lab_ports.guest_ssh is not a TCP port"),
        ("- a list\n", "no kit_lab_ports table"),
    ],
)
def test_a_broken_port_table_is_named(tmp_path: Path, text: str, needle: str) -> None:
    table = tmp_path / "kit_lab.yml"
    table.write_text(text)
    with pytest.raises(ValueError, match=needle):
        site_lab_ports(table)
