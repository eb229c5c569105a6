"""Jinja filter ``teeproof.kit.party_problems``: what is wrong with an inventory's parties (roles/parties).

The logic lives in plugins/module_utils/kit_parties.py, shared with the unit tests.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.teeproof.kit.plugins.module_utils.kit_parties import party_problems


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {"party_problems": party_problems}
