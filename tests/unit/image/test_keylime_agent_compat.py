"""The launcher's two fixes for a 7.x registrar, tested against a stand-in registrar_client module that
behaves like keylime 6.5.3's (ek_tpm sent only without an EK certificate, no Content-Type)."""

from __future__ import annotations

import json
import types
from typing import Any

import keylime_agent_compat as compat


def fake_registrar_client() -> types.ModuleType:
    mod = types.ModuleType("keylime.registrar_client")
    calls: list[tuple[str, str, dict[str, Any]]] = []

    class RequestsClient:
        def __init__(self, base: str, tls: bool) -> None:
            self.base = base

        def post(self, url: str, **kwargs: Any) -> dict[str, Any]:
            calls.append(("POST", url, kwargs))
            return {"status": 200}

        def put(self, url: str, **kwargs: Any) -> dict[str, Any]:
            calls.append(("PUT", url, kwargs))
            return {"status": 200}

    def do_register(
        registrar_ip: str,
        registrar_port: str,
        agent_id: str,
        ek_tpm: str,
        ekcert: str | None,
        aik_tpm: str,
        **kw: Any,
    ) -> Any:
        data = {"ekcert": ekcert, "aik_tpm": aik_tpm}
        if ekcert is None or ekcert == "emulator":
            data["ek_tpm"] = ek_tpm
        # Looked up at call time, like the real module does.
        client = mod.RequestsClient(f"{registrar_ip}:{registrar_port}", False)
        return client.post(f"/v2.1/agents/{agent_id}", data=json.dumps(data))

    def do_activate(registrar_ip: str, registrar_port: str, agent_id: str, key: str) -> Any:
        client = mod.RequestsClient(f"{registrar_ip}:{registrar_port}", False)
        return client.put(f"/v2.1/agents/{agent_id}/activate", data=json.dumps({"auth_tag": key}))

    mod.RequestsClient = RequestsClient  # type: ignore[attr-defined]
    mod.doRegisterAgent = do_register  # type: ignore[attr-defined]
    mod.doActivateAgent = do_activate  # type: ignore[attr-defined]
    mod.calls = calls  # type: ignore[attr-defined]
    return mod


def test_unpatched_module_shows_both_problems() -> None:
    mod = fake_registrar_client()
    mod.doRegisterAgent("10.0.2.2", "8890", "a", "EKPUB", "CERT", "AIK")
    _unused, _unused, kwargs = mod.calls[0]
    assert "headers" not in kwargs
    assert "ek_tpm" not in json.loads(kwargs["data"])


def test_registration_gets_ek_tpm_and_json_header() -> None:
    mod = fake_registrar_client()
    assert compat.patch_registrar_client(mod)
    mod.doRegisterAgent("10.0.2.2", "8890", "agent-1", "EKPUB", "CERT", "AIK", mtls_cert="M")
    method, url, kwargs = mod.calls[0]
    assert (method, url) == ("POST", "/v2.1/agents/agent-1")
    body = json.loads(kwargs["data"])
    assert body == {"ekcert": "CERT", "aik_tpm": "AIK", "ek_tpm": "EKPUB"}
    assert kwargs["headers"]["Content-Type"] == "application/json"


def test_ek_tpm_passed_by_keyword() -> None:
    mod = fake_registrar_client()
    compat.patch_registrar_client(mod)
    mod.doRegisterAgent("h", "1", "a", ek_tpm="EK2", ekcert="C", aik_tpm="A")
    assert json.loads(mod.calls[0][2]["data"])["ek_tpm"] == "EK2"


def test_ek_tpm_as_base64_bytes_like_6_5_3() -> None:
    """keylime 6.5.3's agent passes ek_tpm = base64.b64encode(ek): bytes, which the e2e run caught."""
    mod = fake_registrar_client()
    compat.patch_registrar_client(mod)
    mod.doRegisterAgent("h", "1", "a", b"RUtQVUI=", "CERT", "A")
    assert json.loads(mod.calls[0][2]["data"])["ek_tpm"] == "RUtQVUI="


def test_an_emulated_tpm_without_certificate_registers_with_its_ek_only() -> None:
    """6.5.3 marks a software TPM without an EK certificate (the TD's own vTPM) as "ekcert": "emulator",
    which a 7.14.3 registrar cannot parse as a certificate (HTTP 400): the marker is left out."""
    mod = fake_registrar_client()
    compat.patch_registrar_client(mod)
    mod.doRegisterAgent("h", "1", "a", "EK", "emulator", "A")
    body = json.loads(mod.calls[0][2]["data"])
    assert body["ek_tpm"] == "EK" and "ekcert" not in body
    assert compat.add_ek_tpm(json.dumps({"ekcert": None, "ek_tpm": "EK"}), "EK") == json.dumps(
        {"ekcert": None, "ek_tpm": "EK"}
    )


def test_activation_put_gets_json_header() -> None:
    mod = fake_registrar_client()
    compat.patch_registrar_client(mod)
    mod.doActivateAgent("h", "1", "a", "TAG")
    method, _unused, kwargs = mod.calls[0]
    assert method == "PUT"
    assert kwargs["headers"] == {"Content-Type": "application/json"}


def test_existing_content_type_kept_and_patch_is_idempotent() -> None:
    mod = fake_registrar_client()
    assert compat.patch_registrar_client(mod)
    assert not compat.patch_registrar_client(mod)
    client = mod.RequestsClient("h:1", False)
    client.post("/v2.1/other", data="x", headers={"content-type": "text/plain"})
    assert mod.calls[0][2]["headers"] == {"content-type": "text/plain"}
    assert mod.calls[0][2]["data"] == "x"


def test_ek_tpm_not_leaked_outside_registration() -> None:
    mod = fake_registrar_client()
    compat.patch_registrar_client(mod)
    mod.doRegisterAgent("h", "1", "a", "EK", "CERT", "A")
    client = mod.RequestsClient("h:1", False)
    client.post("/v2.1/agents/b", data=json.dumps({"x": 1}))
    assert json.loads(mod.calls[1][2]["data"]) == {"x": 1}


def test_helpers() -> None:
    assert compat.add_ek_tpm("not json", "EK") == "not json"
    assert compat.add_ek_tpm("[1]", "EK") == "[1]"
    assert compat.add_ek_tpm('{"ek_tpm": "A"}', "B") == '{"ek_tpm": "A"}'
    assert compat.add_ek_tpm("{}", None) == "{}"
    assert compat.with_json_content_type(None) == {"Content-Type": "application/json"}


def test_numeric_release() -> None:
    assert compat.numeric_release("6.12.117+deb13-amd64") == "6.12.117-deb13-amd64"
    assert compat.numeric_release("6.8.0-45-generic") == "6.8.0-45-generic"
    assert compat.numeric_release("6.12.0") == "6.12.0"
    assert compat.numeric_release("weird") == "0-weird"
    for rel in ("6.12.117+deb13-amd64", "5.4.0-1-x"):
        version = compat.numeric_release(rel).split("-")[0].split(".")
        assert all(part.isdigit() for part in version)


def test_agent_module_gets_parsable_release(monkeypatch: Any) -> None:
    import platform

    mod = types.ModuleType("keylime.keylime_agent")
    mod.platform = platform  # type: ignore[attr-defined]
    monkeypatch.setattr(platform, "release", lambda: "6.12.117+deb13-amd64")
    compat.patch_agent_module(mod)
    assert mod.platform.release() == "6.12.117-deb13-amd64"
    assert mod.platform.system() == platform.system()


def test_u_never_reaches_tpm_nv() -> None:
    """keylime 6.5.3 writes U to NV 0x1500018, i.e. into the host's swtpm state; the launcher stops that."""
    written: list[bytes] = []

    class FakeTpm:
        def write_key_nvram(self, key: bytes) -> None:
            written.append(key)

        def read_key_nvram(self) -> list[bytes] | None:
            return [b"U from an earlier run"]

    FakeTpm().write_key_nvram(b"before")
    assert written == [b"before"]
    compat.keep_u_out_of_nvram(FakeTpm)
    tpm = FakeTpm()
    tpm.write_key_nvram(b"U share")
    assert written == [b"before"]
    assert tpm.read_key_nvram() is None


def test_with_the_tds_vtpm_each_quote_first_forwards_imas_new_entries(tmp_path: Any) -> None:
    """KIT_VTPM_STATE set: each quote syncs PCR 10 first (a failed sync fails the quote); unset: as before."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ima_forward.py").write_text(
        "CALLS = []\n"
        "def tpm2_extender():\n    return 'extend'\n"
        "def sync(state, extend):\n"
        "    CALLS.append((str(state), extend))\n"
        "    if str(state).endswith('broken'):\n"
        "        raise RuntimeError('PCR 10 is the replay of no prefix')\n"
        "    return 1\n"
    )
    order: list[str] = []

    class Tpm:
        def create_quote(self, nonce: str) -> str:
            order.append("quote")
            return f"quote:{nonce}"

    assert not compat.forward_ima_before_quotes(Tpm, {})
    assert compat.forward_ima_before_quotes(
        Tpm, {"KIT_VTPM_STATE": "/run/kit-vtpm", "KIT_GUEST_LIB": str(lib)}
    )
    import ima_forward

    assert Tpm().create_quote("n1") == "quote:n1"
    assert ima_forward.CALLS == [("/run/kit-vtpm", "extend")] and order == ["quote"]

    class Broken:
        def create_quote(self, nonce: str) -> str:
            order.append("broken quote")
            return nonce

    compat.forward_ima_before_quotes(Broken, {"KIT_VTPM_STATE": "/run/broken", "KIT_GUEST_LIB": str(lib)})
    try:
        Broken().create_quote("n2")
        raise AssertionError("a quote after a failed sync")
    except RuntimeError as exc:
        assert "no prefix" in str(exc)
    assert order == ["quote"]
