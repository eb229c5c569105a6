"""The unit tests' guard against fixed host ports.

A lab left running by ``bin/kit site`` holds every port of the site lab's table (``kit_lab_ports`` in
``inventories/local/group_vars/all/kit_lab.yml``). The README promises that ``bin/kit test`` runs beside
it, so no unit test may take one of those ports for granted. CI has no lab running: this session fixture
holds them all for the whole run (a listening socket on 127.0.0.1 each), so that a test which still assumes
one of them is free fails in CI as it would beside a lab. A port that something else holds already (a
running lab) is held for us and left as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.unit.lab_ports import hold_port, site_lab_ports


@pytest.fixture(scope="session", autouse=True)
def site_lab_ports_held() -> Iterator[dict[str, int]]:
    """Every port of the site lab's table is busy while the unit tests run, as beside a running lab."""
    ports = site_lab_ports()
    with contextlib.ExitStack() as stack:
        for port in ports.values():
            sock = hold_port(port)
            if sock is not None:
                stack.enter_context(sock)
        yield ports
