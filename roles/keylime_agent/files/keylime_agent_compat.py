"""Start keylime 6.5.3's Python agent so that a keylime 7.x registrar accepts it.

keylime 6.5.3 is the last release with the Python agent. A 7.14.3 registrar rejects its registration
("Could not register agent with invalid data", HTTP 400) for two reasons, both measured in the lab:

1. the agent POSTs its JSON body without ``Content-Type: application/json``;
2. when the TPM has an EK certificate the agent sends only ``ekcert``, while 7.x also requires ``ek_tpm``
   (the EK public area), which 6.5.3 sends only when there is no certificate; and when there is none on an
   emulated TPM (the TD's own vTPM has none), 6.5.3 sends ``"ekcert": "emulator"``, which 7.x cannot parse
   as a certificate: the field is then left out.

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

import contextlib
import contextvars
import functools
import json
import os
import platform
import re
import tempfile
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

JSON_CONTENT_TYPE = "application/json"
PATCHED_MARK = "_tee_proof_kit_compat"
# Positions in doRegisterAgent(registrar_ip, registrar_port, agent_id, ek_tpm, ekcert, aik_tpm,
# mtls_cert, ...).
AGENT_ID_POSITION = 2
EK_TPM_POSITION = 3
AIK_TPM_POSITION = 5
MTLS_CERT_POSITION = 6
# Where the agent publishes, for the TD's quote command, the identity its registrar activated (tmpfs, 0600;
# the unit's RuntimeDirectory, so that it goes with the agent that wrote it).
IDENTITY_FILE = os.environ.get("KIT_AGENT_IDENTITY", "/run/keylime-agent/identity.json")

_ek_tpm: contextvars.ContextVar[str | None] = contextvars.ContextVar("kit_ek_tpm", default=None)
_registered: dict[str, dict[str, str]] = {}


def with_json_content_type(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Return a copy of ``headers`` that declares a JSON body, keeping any Content-Type already set."""
    result = dict(headers or {})
    if not any(key.lower() == "content-type" for key in result):
        result["Content-Type"] = JSON_CONTENT_TYPE
    return result


def add_ek_tpm(body: str | bytes, ek_tpm: str | None) -> str | bytes:
    """Add ``ek_tpm`` to a registration body that lacks it and leave out 6.5.3's ``"ekcert": "emulator"``
    marker (no certificate); anything else is returned unchanged."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return body
    if not isinstance(data, dict):
        return body
    changed = False
    if data.get("ekcert") == "emulator":
        del data["ekcert"]
        changed = True
    if ek_tpm and not data.get("ek_tpm"):
        data["ek_tpm"] = ek_tpm
        changed = True
    return json.dumps(data) if changed else body


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str, position: int) -> str | None:
    """An argument of doRegisterAgent as text (6.5.3 passes base64 and PEM as bytes)."""
    value = kwargs.get(name, args[position] if len(args) > position else None)
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _ek_tpm_argument(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """The agent's ``ek_tpm`` as text. 6.5.3 passes ``base64.b64encode(ek)``, i.e. bytes of base64 text."""
    return _argument(args, kwargs, "ek_tpm", EK_TPM_POSITION)


def identity_record(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, str] | None:
    """What the agent registers: its id, EK and AK public areas and mTLS certificate (None if incomplete)."""
    record = {
        "uuid": _argument(args, kwargs, "agent_id", AGENT_ID_POSITION),
        "ek_tpm": _ek_tpm_argument(args, kwargs),
        "aik_tpm": _argument(args, kwargs, "aik_tpm", AIK_TPM_POSITION),
        "mtls_cert": _argument(args, kwargs, "mtls_cert", MTLS_CERT_POSITION),
    }
    if not all(record.values()):
        return None
    return {k: str(v) for k, v in record.items()}


def write_identity(record: Mapping[str, str], path: str, pid: int) -> None:
    """Publish an activated identity atomically, readable by root only."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".identity-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({**record, "pid": pid}, handle, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def patch_registrar_client(module: ModuleType) -> bool:
    """Patch a ``keylime.registrar_client`` module in place. Returns False if it was already patched."""
    if getattr(module, PATCHED_MARK, False):
        return False
    base: type[Any] = module.RequestsClient
    original_register: Callable[..., Any] = module.doRegisterAgent
    original_activate: Callable[..., Any] = module.doActivateAgent

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
            result = original_register(*args, **kwargs)
        finally:
            _ek_tpm.reset(token)
        record = identity_record(args, kwargs)
        if result and record:
            _registered[record["uuid"]] = record
        return result

    @functools.wraps(original_activate)
    def activate(*args: Any, **kwargs: Any) -> Any:
        result = original_activate(*args, **kwargs)
        agent_id = _argument(args, kwargs, "agent_id", AGENT_ID_POSITION)
        if result and agent_id in _registered:
            write_identity(_registered[agent_id], IDENTITY_FILE, os.getpid())
        return result

    setattr(module, "RequestsClient", CompatRequestsClient)  # noqa: B010
    setattr(module, "doRegisterAgent", register)  # noqa: B010
    setattr(module, "doActivateAgent", activate)  # noqa: B010
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


def _no_write_key_nvram(self: Any, key: bytes) -> None:
    """U stays in the agent's memory only."""
    return None


def _no_read_key_nvram(self: Any) -> None:
    """No U from an earlier run: each delivery needs both shares again."""
    return None


def keep_u_out_of_nvram(tpm_class: type) -> None:
    """Stop keylime 6.5.3 from stowing the key share U in TPM NV index 0x1500018.

    An NV index outlives the job in the vTPM's state (and, with a TPM the host runs, leaves the TD). Without
    it the agent cannot decrypt an old payload again after a restart: the tenant sends U anew."""
    setattr(tpm_class, "write_key_nvram", _no_write_key_nvram)  # noqa: B010
    setattr(tpm_class, "read_key_nvram", _no_read_key_nvram)  # noqa: B010


def forward_ima_before_quotes(tpm_class: type, environ: Mapping[str, str]) -> bool:
    """With the TD's own vTPM (KIT_VTPM_STATE set), extend PCR 10 with every IMA entry measured so far right
    before each quote (ima_forward.sync, under the forwarder's lock), so a quote covers every entry measured
    before it, as with a TPM the kernel extends itself. A failed sync fails the quote. False without one."""
    state = environ.get("KIT_VTPM_STATE")
    if not state:
        return False
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, environ.get("KIT_GUEST_LIB", "/usr/local/lib/tee-proof-kit"))
    forward = importlib.import_module("ima_forward")
    original = tpm_class.create_quote  # type: ignore[attr-defined]
    extend = forward.tpm2_extender()

    @functools.wraps(original)
    def create_quote(self: Any, *args: Any, **kwargs: Any) -> Any:
        forward.sync(Path(state), extend)
        return original(self, *args, **kwargs)

    setattr(tpm_class, "create_quote", create_quote)  # noqa: B010
    return True


def main() -> int:
    """Patch keylime's registrar client and TPM class, then run keylime 6.5.3's agent entry point."""
    import importlib

    keep_u_out_of_nvram(importlib.import_module("keylime.tpm.tpm_main").tpm)
    forward_ima_before_quotes(importlib.import_module("keylime.tpm.tpm_main").tpm, os.environ)
    registrar_client = importlib.import_module("keylime.registrar_client")
    patch_registrar_client(registrar_client)
    patch_agent_module(importlib.import_module("keylime.keylime_agent"))
    agent = importlib.import_module("keylime.cmd.agent")
    agent.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
