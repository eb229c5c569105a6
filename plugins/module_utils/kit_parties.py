"""The kit's parties and the rule that keeps the TD host out of every trusted one.

The parties are inventory groups, one name each (docs/parties.md):

- ``controller``: the operator's trusted machine, where ansible-playbook runs; it draws nonces and keys, holds
  the input, the reference set and the signing key, and judges quotes, claims, receipts and proofs;
- ``image_builder``: builds the image and its reference values (trusted; may be the controller);
- ``td_host``: launches the TD and relays its traffic; the party the kit does not trust. It decides nothing;
- ``td``: the TD, trusted once its quote and claims check out; ``image_rootfs``: the image's root during the
  build (chroot);
- ``verifier``: the client's Keylime verifier, registrar and tenant (trusted).

Every inventory must give the TD host machines of its own: a TD host that is also a trusted party (by
inventory name, by address, or by being the controller's own machine) would run trust decisions on the party
the kit distrusts. The lab meets the rule too: its TD host is a container of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PARTIES = ("controller", "image_builder", "td_host", "td", "image_rootfs", "verifier")
TRUSTED = ("controller", "image_builder", "verifier")
UNTRUSTED = "td_host"
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})


def _address(name: str, hostvars: Mapping[str, Any]) -> str:
    return str(hostvars.get(name, {}).get("ansible_host") or name).strip().lower()


def _local(name: str, hostvars: Mapping[str, Any]) -> bool:
    return hostvars.get(name, {}).get("ansible_connection") == "local" or _address(name, hostvars) in LOOPBACK


def party_problems(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Any],
    needed: Sequence[str] = (),
) -> list[str]:
    """What is wrong with an inventory's parties, one sentence each; empty when nothing is.

    ``groups`` and ``hostvars`` are Ansible's; ``needed`` the parties a playbook uses (each needs a host).
    """
    problems: list[str] = []
    unknown = [p for p in needed if p not in PARTIES]
    if unknown:
        raise ValueError(f"unknown parties {unknown}: the kit's parties are {', '.join(PARTIES)}")
    for party in needed:
        if not groups.get(party):
            needs = ", ".join(needed)
            problems.append(f"the inventory has no host in group '{party}' (this playbook needs {needs})")
    untrusted = list(groups.get(UNTRUSTED, []))
    for party in TRUSTED:
        trusted = list(groups.get(party, []))
        for host in untrusted:
            if host in trusted:
                problems.append(f"td_host host '{host}' is also in '{party}'")
                continue
            same = [t for t in trusted if _address(t, hostvars) == _address(host, hostvars)]
            if same:
                problems.append(f"td_host host '{host}' has the address of {party} host '{same[0]}'")
            elif party == "controller" and _local(host, hostvars):
                problems.append(f"td_host host '{host}' is reached on this machine, the controller's")
    return problems
