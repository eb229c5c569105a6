"""Jinja tests for the kit's input checks: `x is teeproof.kit.kit_host_address`, `x is teeproof.kit.kit_port`.

The logic lives in plugins/module_utils/kit_validate.py, shared with the unit tests.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.teeproof.kit.plugins.module_utils.kit_validate import (
    is_host_address,
    is_ip_address,
    is_port,
)


class TestModule:
    """Ansible test plugin entry point."""

    def tests(self) -> dict[str, Any]:
        return {
            "kit_host_address": is_host_address,
            "kit_ip_address": is_ip_address,
            "kit_port": is_port,
        }
