"""Start keylime 6.5.3's Python agent so that a keylime 7.x registrar accepts it.

keylime 6.5.3 is the last release with the Python agent. A 7.14.3 registrar rejects its registration
("Could not register agent with invalid data", HTTP 400) for two reasons, both measured in the lab:

1. the agent POSTs its JSON body without ``Content-Type: application/json``;
2. when the TPM has an EK certificate the agent sends only ``ekcert``, while 7.x also requires ``ek_tpm``
   (the EK public area), which 6.5.3 sends only when there is no certificate.

A third fix is needed on Debian trixie's kernel whatever the registrar: 6.5.3 parses
``platform.release().split("-")[0]`` as dot-separated integers and crashes on "6.12.117+deb13-amd64".
The agent module is given a ``platform`` whose ``release()`` starts with the numeric version
("6.12.117-deb13-amd64"); everything else is the real ``platform`` module.

This launcher fixes them at import time, from outside keylime: it wraps
``keylime.registrar_client.RequestsClient`` (adds the header to POST/PUT and ``ek_tpm`` to the
registration body) and ``keylime.registrar_client.doRegisterAgent`` (remembers the ``ek_tpm`` the agent
passes), then runs the agent's normal entry point. Nothing in site-packages is edited; the wheel's
files keep the digests that the runtime policy lists.

The kit's keylime_agent role installs this file as ``<prefix>/lib/keylime_agent_compat.py`` and a tiny
executable launcher that calls :func:`main`.
"""

from __future__ import annotations

import contextvars
import functools
import json
import platform
import re
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

JSON_CONTENT_TYPE = "application/json"
PATCHED_MARK = "_tee_proof_kit_compat"
# Position of ``ek_tpm`` in doRegisterAgent(registrar_ip, registrar_port, agent_id, ek_tpm, ekcert, ...).
EK_TPM_POSITION = 3

_ek_tpm: contextvars.ContextVar[str | None] = contextvars.ContextVar("kit_ek_tpm", default=None)


def with_json_content_type(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Return a copy of ``headers`` that declares a JSON body, keeping any Content-Type already set."""
    result = dict(headers or {})
    if not any(key.lower() == "content-type" for key in result):
        result["Content-Type"] = JSON_CONTENT_TYPE
    return result


def add_ek_tpm(body: str | bytes, ek_tpm: str | None) -> str | bytes:
    """Add ``ek_tpm`` to a registration body that lacks it; anything else is returned unchanged."""
    if not ek_tpm:
        return body
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return body
    if not isinstance(data, dict) or data.get("ek_tpm"):
        return body
    data["ek_tpm"] = ek_tpm
    return json.dumps(data)


def _ek_tpm_argument(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """The agent's ``ek_tpm`` as text. 6.5.3 passes ``base64.b64encode(ek)``, i.e. bytes of base64 text."""
    value = kwargs.get("ek_tpm", args[EK_TPM_POSITION] if len(args) > EK_TPM_POSITION else None)
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def patch_registrar_client(module: ModuleType) -> bool:
    """Patch a ``keylime.registrar_client`` module in place. Returns False if it was already patched."""
    if getattr(module, PATCHED_MARK, False):
        return False
    base: type[Any] = module.RequestsClient
    original_register: Callable[..., Any] = module.doRegisterAgent

    class CompatRequestsClient(base):  # type: ignore[misc]
        """RequestsClient that sends JSON bodies as JSON and completes registrations for 7.x."""

        def post(self, url: str, **kwargs: Any) -> Any:
            if "data" in kwargs and "/agents/" in url:
                kwargs["data"] = add_ek_tpm(kwargs["data"], _ek_tpm.get())
            kwargs["headers"] = with_json_content_type(kwargs.get("headers"))
            return super().post(url, **kwargs)

        def put(self, url: str, **kwargs: Any) -> Any:
            kwargs["headers"] = with_json_content_type(kwargs.get("headers"))
            return super().put(url, **kwargs)

    @functools.wraps(original_register)
    def register(*args: Any, **kwargs: Any) -> Any:
        token = _ek_tpm.set(_ek_tpm_argument(args, kwargs))
        try:
            return original_register(*args, **kwargs)
        finally:
            _ek_tpm.reset(token)

    setattr(module, "RequestsClient", CompatRequestsClient)  # noqa: B010
    setattr(module, "doRegisterAgent", register)  # noqa: B010
    setattr(module, PATCHED_MARK, True)
    return True


def numeric_release(release: str) -> str:
    """Put the numeric kernel version first: '6.12.117+deb13-amd64' -> '6.12.117-deb13-amd64'."""
    match = re.match(r"\d+(?:\.\d+)*", release)
    if match is None:
        return "0-" + release
    rest = release[match.end() :].lstrip("+-.")
    return match.group(0) + ("-" + rest if rest else "")


class _PlatformShim:
    """The real ``platform`` module, except that ``release()`` starts with a numeric version."""

    def __getattr__(self, name: str) -> Any:
        return getattr(platform, name)

    @staticmethod
    def release() -> str:
        return numeric_release(platform.release())


def patch_agent_module(module: ModuleType) -> None:
    """Give ``keylime.keylime_agent`` a ``platform`` whose release() it can parse."""
    setattr(module, "platform", _PlatformShim())  # noqa: B010


def main() -> int:
    """Patch keylime's registrar client, then run keylime 6.5.3's agent entry point."""
    import importlib

    registrar_client = importlib.import_module("keylime.registrar_client")
    patch_registrar_client(registrar_client)
    patch_agent_module(importlib.import_module("keylime.keylime_agent"))
    agent = importlib.import_module("keylime.cmd.agent")
    agent.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
