"""bin/tdx-quote exit codes, measurement helpers (Authenticode, MRTD, cmdline), guest script, Azure HCL."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import tdx_measure, tdx_quote
from conftest import AZURE, DCAP, GTG, QUOTE_TIME, ROOT
from test_sim import _fake_kernel

CLI = ROOT / "bin" / "tdx-quote"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CLI), *args], capture_output=True, text=True, check=False)


def test_cli_parse_json_keys() -> None:
    res = run("parse", str(DCAP / "tdx_quote"), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    keys = "version tee_type mr_td mr_config_id mr_owner mr_owner_config mr_seam tee_tcb_svn td_attributes"
    for key in [*keys.split(), "xfam", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "report_data"]:
        assert key in data
        if isinstance(data[key], str):
            assert data[key] == data[key].lower()


def test_cli_parse_not_a_quote_exits_2() -> None:
    res = run("parse", str(GTG / "nonce.dat"), "--json")
    assert res.returncode == 2 and "not a valid TDX quote" in res.stderr and res.stdout == ""


def test_cli_verify_exit_codes(tmp_path: Path) -> None:
    coll = str(DCAP / "tdx_quote_collateral.json")
    ok = run("verify", str(DCAP / "tdx_quote"), "--collateral", coll, "--now", str(QUOTE_TIME), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["tcb_status"] == "UpToDate"
    late = run("verify", str(DCAP / "tdx_quote"), "--collateral", coll, "--now", "1852919234", "--json")
    assert late.returncode == 1 and json.loads(late.stdout)["ok"] is False
    bad = run("verify", str(GTG / "report.dat"), "--collateral", coll, "--now", str(QUOTE_TIME), "--json")
    assert bad.returncode == 2
    (tmp_path / "p.yml").write_text("rtmr7: abc\n")
    pol = run(
        "verify",
        str(DCAP / "tdx_quote"),
        "--collateral",
        coll,
        "--now",
        "1",
        "--policy",
        str(tmp_path / "p.yml"),
    )
    assert pol.returncode == 2 and "rtmr7" in pol.stderr


def test_cli_replay_ccel() -> None:
    res = run("replay-ccel", str(GTG / "ccel_data.dat"), "--json")
    quote = tdx_quote.parse_quote((GTG / "cos-113-tdx-quote.dat").read_bytes())
    assert json.loads(res.stdout)["rtmr2"] == quote.report.rtmr2.hex()


def test_cli_measure_writes_json(tmp_path: Path) -> None:
    (tmp_path / "k").write_bytes(_fake_kernel())
    (tmp_path / "i").write_bytes(b"initrd")
    res = run(
        "measure",
        "--kernel",
        str(tmp_path / "k"),
        "--initrd",
        str(tmp_path / "i"),
        "--out",
        str(tmp_path / "e.json"),
    )
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "e.json").read_text())
    assert len(data["rtmr1"]) == 96 and data["measured_cmdline"] == " initrd=initrd"


# ---------------------------------------------------------------- Authenticode


def test_authenticode_excludes_checksum_and_appended_signature_but_not_code() -> None:
    base = _fake_kernel()
    digest = tdx_measure.authenticode_digest(base)
    lay = tdx_measure.pe_layout(base)
    mutated = bytearray(base)
    mutated[lay.checksum_at] ^= 0xFF
    assert tdx_measure.authenticode_digest(bytes(mutated)) == digest
    signed = bytearray(base) + b"\x30" * 0x200  # an appended certificate table ...
    struct.pack_into("<II", signed, lay.certdir_at, len(base), 0x200)  # ... that the cert dir points at
    assert tdx_measure.authenticode_digest(bytes(signed)) == digest
    for offset in (0x10, 0x1000, 0x2FFF, 0x202):
        mutated = bytearray(base)
        mutated[offset] ^= 0x01
        assert tdx_measure.authenticode_digest(bytes(mutated)) != digest


def test_authenticode_equals_independent_region_hash() -> None:
    base = _fake_kernel()
    lay = tdx_measure.pe_layout(base)
    regions = base[: lay.checksum_at] + base[lay.checksum_at + 4 : lay.certdir_at]
    regions += base[lay.certdir_at + 8 : 0x1000] + base[0x1000:0x3000]
    assert tdx_measure.authenticode_digest(base) == hashlib.sha384(regions).digest()


def test_authenticode_of_a_real_signed_pe_matches_osslsigncode() -> None:
    """Cross-check with Debian's signed GRUB (osslsigncode: A68F6D71...). Needs the .deb unpacked."""
    path = Path(
        os.environ.get("KIT_SIGNED_PE", "/tmp/tdxdl/x/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")
    )
    if not path.exists():
        pytest.skip("signed PE sample not present (see docs/tdx.md for how it was checked)")
    digest = tdx_measure.authenticode_digest(path.read_bytes(), "sha256").hex()
    assert digest == "a68f6d71ebddaa19751ff8d729f67d11b0df8e4c49400c3e7e90de16119e1265"


def test_qemu_patch_changes_the_setup_header_only() -> None:
    kernel = _fake_kernel()
    patched = tdx_measure.qemu_patch_kernel(kernel, 1000, 2 << 30)
    diff = [i for i in range(len(kernel)) if kernel[i] != patched[i]]
    assert diff and all(0x210 <= i < 0x230 for i in diff)
    with pytest.raises(tdx_measure.MeasureError, match="HdrS"):
        tdx_measure.qemu_patch_kernel(bytes(0x2000), 0, 2 << 30)


def test_cmdline_encoding() -> None:
    assert tdx_measure.measured_cmdline("a", True) == "a initrd=initrd\x00".encode("utf-16-le")
    assert tdx_measure.measured_cmdline("a", False) == b"a\x00\x00\x00"
    r2 = tdx_measure.rtmr2_direct_boot("a", b"x")
    first = hashlib.sha384(bytes(48) + hashlib.sha384("a initrd=initrd\x00".encode("utf-16-le")).digest())
    assert r2 == hashlib.sha384(first.digest() + hashlib.sha384(b"x").digest()).digest()


# ---------------------------------------------------------------- MRTD


def _guid(text: str) -> bytes:
    return tdx_measure.guid_bytes(text)


def _tdvf(sections: list[tuple[int, int, int, int, int, int]], payload: bytes) -> bytes:
    """payload || TDVF descriptor || GUIDed table (TDX metadata entry) || footer || 32 bytes."""
    desc = b"TDVF" + struct.pack("<III", 16 + 32 * len(sections), 1, len(sections))
    desc += b"".join(struct.pack("<IIQQII", *s) for s in sections)
    total = len(payload) + len(desc) + 22 + 18 + 32
    entry = (
        struct.pack("<I", total - len(payload)) + struct.pack("<H", 22) + _guid(tdx_measure.TDX_METADATA_GUID)
    )
    footer = struct.pack("<H", 18 + 22) + _guid(tdx_measure.OVMF_TABLE_FOOTER_GUID)
    return payload + desc + entry + footer + bytes(32)


def _rec(tag: bytes, gpa: int) -> bytes:
    return tag.ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104)


def test_mrtd_of_a_synthetic_tdvf() -> None:
    payload = bytes(range(256)) * 32  # two pages
    fw = _tdvf([(0, 0x2000, 0xFFFF0000, 0x2000, 0, 1), (0, 0, 0x800000, 0x1000, 2, 0)], payload)
    secs = tdx_measure.parse_tdvf_sections(fw)
    assert [s.type_name for s in secs] == ["BFV", "TD_HOB"]
    ext = [
        [
            _rec(b"MR.EXTEND", 0xFFFF0000 + p * 0x1000 + c * 256) + payload[p * 0x1000 + c * 256 :][:256]
            for c in range(16)
        ]
        for p in range(2)
    ]
    add = [_rec(b"MEM.PAGE.ADD", 0xFFFF0000 + p * 0x1000) for p in range(2)]
    hob = _rec(b"MEM.PAGE.ADD", 0x800000)
    inter = add[0] + b"".join(ext[0]) + add[1] + b"".join(ext[1]) + hob
    section = add[0] + add[1] + b"".join(ext[0]) + b"".join(ext[1]) + hob
    assert tdx_measure.compute_mrtd(fw) == hashlib.sha384(inter).digest()
    assert tdx_measure.compute_mrtd(fw, "section") == hashlib.sha384(section).digest()
    aug = _tdvf([(0, 0, 0x800000, 0x1000, 3, 2)], b"")
    assert tdx_measure.compute_mrtd(aug) == hashlib.sha384(b"").digest()


def test_mrtd_rejects_non_tdvf() -> None:
    with pytest.raises(tdx_measure.MeasureError, match="footer"):
        tdx_measure.compute_mrtd(bytes(4096))


def test_mrtd_of_debian_ovmf_inteltdx_if_present() -> None:
    path = Path(os.environ.get("KIT_OVMF_TDX", "/tmp/tdxdl/o/usr/share/ovmf/OVMF.inteltdx.ms.fd"))
    if not path.exists():
        pytest.skip("OVMF.inteltdx.ms.fd not present")
    secs = tdx_measure.parse_tdvf_sections(path.read_bytes())
    assert [s.type_name for s in secs][:2] == ["BFV", "CFV"]


# ---------------------------------------------------------------- guest script


def _guest() -> Any:
    from tests.unit.programs import load_program

    # the guest's library folder holds td_claims.py (the kit's plugins/module_utils), whatever ran before
    os.environ.setdefault("KIT_GUEST_LIB", str(ROOT / "plugins" / "module_utils"))
    return load_program(ROOT / "roles" / "tdx_quote_service" / "files" / "tdx-get-quote", "tdx_get_quote")


def _fake_tsm(tmp_path: Path, bump: int) -> Path:
    entry = tmp_path / "tsm" / "kit-x"
    entry.mkdir(parents=True)
    (entry / "provider").write_text("tdx_guest\n")
    (entry / "generation").write_text("5\n")
    (entry / "outblob").write_bytes(b"QUOTE")
    return entry


def test_guest_configfs_generation_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    guest = _guest()
    entry = _fake_tsm(tmp_path, 1)
    monkeypatch.setattr(guest.tempfile, "mkdtemp", lambda prefix, dir: str(entry))
    real_write = Path.write_bytes

    def write(self: Path, data: bytes) -> int:
        if self.name == "inblob":
            (self.parent / "generation").write_text("6\n")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write)
    assert guest.quote_from_configfs(b"\0" * 64, tmp_path / "tsm") == b"QUOTE"
    entry.mkdir(exist_ok=True)

    def racy(self: Path, data: bytes) -> int:
        if self.name == "inblob":
            (self.parent / "generation").write_text("8\n")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", racy)
    (entry / "generation").write_text("5\n")
    with pytest.raises(guest.QuoteError, match="concurrent writer"):
        guest.quote_from_configfs(b"\0" * 64, tmp_path / "tsm")


def test_guest_report_data_binds_its_own_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, td: dict[str, Any]
) -> None:
    guest = _guest()
    assert not hasattr(guest, "report_data_for")  # no caller-supplied binding any more
    asked: list[bytes] = []
    monkeypatch.setattr(guest, "TSM_ROOT", tmp_path / "no-tsm")

    def provider(rd: bytes, url: str) -> tuple[bytes, str | None]:
        asked.append(rd)
        return b"QUOTE", "TE9H"

    monkeypatch.setattr(guest, "quote_from_simulated_provider", provider)
    nonce = b"\x07" * 32
    out = guest.get_quote(nonce, td["claims"], "http://10.0.2.101:8479/quote")
    canon = json.dumps(td["claims"], sort_keys=True, separators=(",", ":")).encode()
    assert asked == [hashlib.sha512(nonce + hashlib.sha512(canon).digest()).digest()]
    assert out["claims"] == td["claims"] and out["simulated"] is True
    assert out["event_log_b64"] == "TE9H"  # the provider's log, where a TD reads its CCEL


# ---------------------------------------------------------------- Azure HCL report


def _rsa_n(jwk: dict[str, Any]) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=="), "big")


def test_azure_hcl_report_binds_runtime_data() -> None:
    hcl = tdx_quote.parse_hcl_report((AZURE / "hcl-report-tdx.bin").read_bytes())
    assert hcl.report_type == 4 and hcl.runtime_data_bound()
    ak = next(k for k in json.loads(hcl.runtime_data)["keys"] if k["kid"] == "HCLAkPub")
    assert ak["kty"] == "RSA" and _rsa_n(ak).bit_length() == 2048
    tampered = bytearray((AZURE / "hcl-report-tdx.bin").read_bytes())
    tampered[1300] ^= 0x01  # inside the runtime data JSON
    assert not tdx_quote.parse_hcl_report(bytes(tampered)).runtime_data_bound()


def test_recorded_akpub_pem_is_not_the_hcl_reports_ak() -> None:
    """Finding: the recorded akpub.pem (and var-data.bin) come from another capture than the HCL report.

    The AK binding check therefore cannot be shown positively with these vectors; this test pins that
    the comparison does detect a different key (it would be the failure a verifier must raise).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    hcl = tdx_quote.parse_hcl_report((AZURE / "hcl-report-tdx.bin").read_bytes())
    ak = next(k for k in json.loads(hcl.runtime_data)["keys"] if k["kid"] == "HCLAkPub")
    pem = serialization.load_pem_public_key((AZURE / "akpub.pem").read_bytes())
    assert isinstance(pem, rsa.RSAPublicKey)
    assert _rsa_n(ak) != pem.public_numbers().n
