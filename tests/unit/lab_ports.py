"""The labs' port table: the site lab's row is what the unit tests' guard (tests/unit/conftest.py) holds."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LAB_TABLE = ROOT / "inventories" / "local" / "group_vars" / "all" / "kit_lab.yml"


def lab_port_tables(table: Path = LAB_TABLE) -> dict[str, dict[str, int]]:
    """Every lab's ports on this machine's loopback, by lab name and port name (``kit_lab_port_table``)."""
    data = yaml.safe_load(table.read_text(encoding="utf-8"))
    labs = data.get("kit_lab_port_table") if isinstance(data, dict) else None
    if not isinstance(labs, dict) or not labs:
        raise ValueError(f"{table} has no kit_lab_port_table")
    out: dict[str, dict[str, int]] = {}
    for lab, ports in labs.items():
        if not isinstance(ports, dict) or not ports:
            raise ValueError(f"{table}: kit_lab_port_table.{lab} has no ports")
        row: dict[str, int] = {}
        for name, port in ports.items():
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise ValueError(f"{table}: kit_lab_port_table.{lab}.{name} is not a TCP port: {port!r}")
            row[str(name)] = port
        out[str(lab)] = row
    return out


def site_lab_ports(table: Path = LAB_TABLE) -> dict[str, int]:
    """The site lab's ports (``bin/kit site``, the lab a user leaves running), by name."""
    labs = lab_port_tables(table)
    if "site" not in labs:
        raise ValueError(f"{table}: kit_lab_port_table has no site lab")
    return labs["site"]


def hold_port(port: int) -> socket.socket | None:
    """A socket listening on 127.0.0.1:PORT, or None when something else holds the port already."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(8)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            return None
        raise
    return sock
