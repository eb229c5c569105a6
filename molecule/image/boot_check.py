#!/usr/bin/env python3
"""Boot test of the guest image (LAB ONLY: QEMU TCG, whose guest memory, the TD's vTPM's included, the host
can read: SIMULATED, not a security boundary).

Boots the image with the kit's own launcher (module_utils td_launch, what roles/td_host runs: a throwaway
overlay of the disk image, no TPM attached, the SIMULATED provider), on free ports, then
over SSH (the inventory's lab key) checks that:
  1. the kernel runs with the image's command line and systemd loaded the kit's IMA policy;
  2. the custom policy (not the boot 'tcb' one) is active: a file owned by the measured owner under
     /opt/zk-prover is measured when root reads it, a root-owned file under /root is not;
  3. PCR10 (sha1 and sha256 banks) equals the replay of a prefix of the binary IMA log
     (PCR read first, log read after);
  4. every file measured during boot is in the runtime policy with the measured SHA-256 (what the
     Keylime verifier checks), apart from the probe files of check 2;
  5. the Keylime agent starts once its trusted CA is delivered, reads the vTPM's EK and derives its UUID
     from it (no registrar runs here, so it stops at registration).
Prints the tail of the guest's serial log on failure. Writes a JSON report.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ansible_collections.teeproof.kit.plugins.module_utils import ima_log, td_launch

ROOT = Path(__file__).resolve().parents[2]

SIMULATED = "SIMULATED: the TD's own vTPM under QEMU TCG (guest memory the host can read): lab only"


class Guest:
    """The image booted by the product's own launcher (module_utils td_launch, what roles/td_host runs) in lab
    mode, on free ports and a throwaway run folder, so that the image test boots the guest as the kit does."""

    def __init__(self, image_dir: Path, work: Path, key: Path, memory: str, smp: str) -> None:
        self.key = key
        self.spec = td_launch.LaunchSpec(
            mode="lab",
            image_dir=str(image_dir),
            run_dir=str(work / "run"),
            cmdline=(image_dir / "cmdline").read_text().strip(),
            memory_mib=int(memory),
            smp=int(smp),
            ssh_port=td_launch.free_port(),
            agent_port=td_launch.free_port(),
            session_port=td_launch.free_port(),  # a lab left running by bin/kit site holds its own
            # no registrar runs here: the guest's forward leads to a free port (the agent stops there)
            registrar_port=td_launch.free_port(),
            kit_root=str(ROOT),
        )
        self.port = self.spec.ssh_port

    def start(self, timeout: float) -> float:
        try:
            result = td_launch.start(self.spec, sys.executable, timeout)
        except td_launch.TdHostError as exc:
            raise CheckError(f"{exc}\n{exc.serial_tail}") from None
        return float(result["boot_seconds"])

    def ssh(self, command: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess[str]:
        argv = [
            "ssh",
            "-i",
            str(self.key),
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "root@127.0.0.1",
            command,
        ]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise CheckError(
                f"guest command failed ({result.returncode}): {command}\n{result.stderr[-2000:]}"
            )
        return result

    def wait_for_systemd(self, timeout: float) -> None:
        """After the launcher saw the SSH banner: wait until systemd has finished starting units."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                cmd = "systemctl is-system-running --wait >/dev/null 2>&1; true"
                if self.ssh(cmd, check=False, timeout=200).returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(5)
        raise CheckError(f"the guest's systemd did not settle within {timeout:.0f} s")

    def stop(self) -> None:
        td_launch.stop(self.spec)

    def serial_tail(self, lines: int = 80) -> str:
        return td_launch.serial_tail(self.spec.run, lines)


class CheckError(Exception):
    pass


def lab_ca_pem() -> str:
    """A throwaway CA certificate for the agent's trusted_client_ca (its key is discarded at once)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tee-proof-kit boot-test CA (throwaway)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def check_agent(guest: Guest, report: dict[str, Any]) -> None:
    """5. The Keylime agent starts with a delivered CA, reads the vTPM's EK and derives its UUID from it."""
    ca = lab_ca_pem()
    guest.ssh(
        "install -d -m 0700 /var/lib/keylime/cv_ca && "
        f"cat > /var/lib/keylime/cv_ca/cacert.crt <<'EOF'\n{ca}EOF"
    )
    guest.ssh("systemctl start keylime_agent")
    deadline = time.monotonic() + 180
    log = ""
    while time.monotonic() < deadline:
        log = guest.ssh("journalctl -u keylime_agent -b -o cat --no-pager", check=False).stdout
        if "Agent UUID:" in log and ("registrar" in log.lower() or "Registration failed" in log):
            break
        time.sleep(5)
    report["agent_log_tail"] = log.strip().splitlines()[-15:]
    found = re.search(r"Agent UUID: ([0-9a-f]{64})", log)
    if not found:
        raise CheckError("the agent did not derive its UUID from the vTPM's EK; its log:\n" + log[-3000:])
    ek_pem = guest.ssh("tpm2_readpublic -Q -c 0x81010001 -f pem -o /dev/stdout").stdout
    ek_uuid = hashlib.sha256(ek_pem.encode()).hexdigest()
    report["agent_uuid"] = found.group(1)
    report["agent_uuid_is_sha256_of_vtpm_ek"] = found.group(1) == ek_uuid
    if found.group(1) != ek_uuid:
        raise CheckError(f"agent UUID {found.group(1)} is not SHA-256 of the EK ({ek_uuid})")


def check_vtpm(guest: Guest, report: dict[str, Any]) -> None:
    """No TPM from the host: IMA started in TPM-bypass, and the agent's TPM is the device the TD's own vTPM
    got from the kernel's vTPM proxy (roles/td_vtpm), its units active."""
    out = guest.ssh(
        "journalctl -k -b -o cat | grep -c 'activating TPM-bypass' || true; echo '----'; "
        "cat /run/kit-vtpm/tpm.env; echo '----'; ls -l /sys/class/tpm/; echo '----'; "
        "systemctl is-active kit-vtpm kit-ima-forward",
        check=False,
    ).stdout
    bypass, env, tpms, active = (part.strip() for part in out.split("----"))
    found = re.search(r"^TPM2TOOLS_TCTI=device:/dev/tpmrm(\d+)$", env, re.M)
    report["ima_tpm_bypass"] = bypass == "1"
    report["vtpm_tcti"] = found.group(0) if found else env
    report["tpms"] = [line.split(" ", 8)[-1] for line in tpms.splitlines()[1:]]
    report["vtpm_units"] = active.split()
    if bypass != "1":
        raise CheckError("IMA found a TPM at boot: one was attached from outside the TD")
    if not found or not re.search(
        rf"tpm{found.group(1)} -> \S*devices/virtual/tpm/tpm{found.group(1)}$", tpms, re.M
    ):
        raise CheckError(f"the agent's TPM is not the TD's vTPM proxy device: {env!r} / {tpms!r}")
    if active.split() != ["active", "active"]:
        raise CheckError(f"kit-vtpm and kit-ima-forward are not both active: {active!r}")


def check_readonly_root(guest: Guest, report: dict[str, Any]) -> None:
    """The root is the dm-verity device, read-only; what the guest writes is on tmpfs; no journal on disk,
    no core dumps, no swap."""
    out = guest.ssh(
        "findmnt -n -o SOURCE,OPTIONS /; "
        "veritysetup status kitroot | grep -E '^ *(type|status|mode):' | tr -s ' '; "
        "for m in /var /tmp /dev/shm; do findmnt -n -o TARGET,FSTYPE,OPTIONS $m; done; "
        "touch /opt/.kit-rw-probe 2>&1 || true; "
        "journalctl --header -q | grep -m1 'File path' || true; "
        "sysctl -n kernel.core_pattern; systemctl show -p DefaultLimitCORE --value; "
        "tail -n +2 /proc/swaps | wc -l",
        check=False,
    ).stdout
    report["readonly_root"] = out.strip().splitlines()
    lines = out.splitlines()
    source, _unused, options = lines[0].partition(" ")
    if source != "/dev/mapper/kitroot" or "ro" not in options.split(","):
        raise CheckError(f"the root is not the read-only verity device: {lines[0]}")
    if "Read-only file system" not in out:
        raise CheckError(f"a file could be created on the root filesystem: {out}")
    if "type: verity" not in out.lower() or "status: verified" not in out.lower():
        raise CheckError(f"veritysetup does not report a verified root: {out}")
    for mount in ("/var tmpfs", "/tmp tmpfs", "/dev/shm tmpfs"):
        line = next((x for x in lines if x.startswith(mount)), "")
        if "noexec" not in line:
            raise CheckError(f"{mount.split()[0]} is not a noexec tmpfs: {line or 'not mounted'}")
    if "/run/log/journal" not in out:
        raise CheckError(f"the journal is not volatile: {out}")
    if "|/bin/false" not in out or lines[-1].strip() != "0" or lines[-2].strip() != "0":
        raise CheckError(f"core dumps or swap are on: {lines[-3:]}")


SESSION_PROBE = r"""
import json, urllib.request, urllib.error
def ask(method, body=None):
    req = urllib.request.Request("http://127.0.0.1:9010" + ("/session" if method == "GET" else "/requests"),
                                 data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
env = {"kit_session": 2, "session": "0" * 32, "seq": 0, "ct": "A" * 88}
print(json.dumps({"state": ask("GET"), "request": ask("POST", json.dumps(env).encode())}))
"""


def check_session(guest: Guest, report: dict[str, Any]) -> None:
    """The session service runs from boot with a key of its own (public half on tmpfs) and serves nothing
    before a Keylime-delivered activation: neither its state nor a request."""
    deadline = time.monotonic() + 240
    out = ""
    while time.monotonic() < deadline:
        out = guest.ssh(
            "systemctl is-active kit-session; cat /run/kit-td/session_x25519.pub", check=False
        ).stdout
        if out.startswith("active") and len(out.split()) == 2:
            break
        time.sleep(5)
    lines = out.split()
    if not lines or lines[0] != "active" or len(lines) != 2:
        log = guest.ssh("journalctl -u kit-session -b -o cat --no-pager | tail -20", check=False).stdout
        raise CheckError(f"kit-session does not run or published no session key: {out!r}\n{log}")
    probe = json.loads(guest.ssh(f"python3 - <<'EOF'\n{SESSION_PROBE}\nEOF").stdout)
    report["session"] = {"key_published": True, "state": probe["state"][1], "request": probe["request"]}
    if len(lines[1]) != 44 or probe["state"][0] != 403 or probe["state"][1].get("error") != "not_active":
        raise CheckError(f"the session service's state is wrong before activation: {probe['state']}")
    if probe["request"][0] != 403 or probe["request"][1].get("error") != "not_active":
        raise CheckError(f"the session service answered a request before activation: {probe['request']}")


def check(guest: Guest, image_dir: Path, report: dict[str, Any]) -> None:
    cmdline = (image_dir / "cmdline").read_text()
    running = guest.ssh("cat /proc/cmdline").stdout.strip()
    report["cmdline_matches"] = running == cmdline
    if running != cmdline:
        raise CheckError(f"guest runs with another command line:\n  {running}\n  expected {cmdline}")
    journal = guest.ssh("journalctl -b -o cat --no-pager | grep -i 'IMA' | head -20").stdout
    report["ima_journal"] = journal.strip().splitlines()
    if "Successfully loaded the IMA custom policy" not in journal:
        raise CheckError(f"systemd did not report loading the IMA custom policy; journal says:\n{journal}")
    policy_in_guest = guest.ssh("sha256sum /etc/ima/ima-policy").stdout.split()[0]
    report["ima_policy_sha256"] = policy_in_guest

    # The TD's keys are made at boot on tmpfs and sshd serves that key only; none is on the disk.
    keys = guest.ssh(
        "stat -f -c %T /run/kit-td; ls /etc/ssh | grep -c '^ssh_host_' || true; "
        "cut -d' ' -f1,2 /run/kit-td/ssh_host_ed25519_key.pub; "
        "sshd -T 2>/dev/null | grep -i '^hostkey '"
    ).stdout.split("\n")
    report["td_keys_on"] = keys[0].strip()
    report["ssh_host_keys_on_disk"] = int(keys[1].strip() or 0)
    report["sshd_host_keys"] = [line.split()[1] for line in keys[3:] if line.strip()]
    if keys[0].strip() != "tmpfs" or report["ssh_host_keys_on_disk"] != 0:
        raise CheckError(f"the TD's keys are not on tmpfs only: {keys[:2]}")
    if report["sshd_host_keys"] != ["/run/kit-td/ssh_host_ed25519_key"]:
        raise CheckError(f"sshd serves other host keys: {report['sshd_host_keys']}")

    check_readonly_root(guest, report)
    check_vtpm(guest, report)

    # 2. behaviour of the loaded policy (the root is read-only: probe with files of the image that nothing
    # reads at boot; one owned by the prover's uid, which the kit's policy measures, and one owned by root),
    # and the image identity file, which the quote command reads and the kit's policy measures (its owner)
    measured = "/opt/zk-prover/circuits/semaphore20/manifest.json"
    unmeasured = "/etc/debian_version"
    image_id = "/etc/tee-proof-kit/image.json"
    guest.ssh(f"cat {measured} {unmeasured} {image_id} >/dev/null")

    # 5 before 3 and 4, so that the files the agent ran are in the log that is checked.
    check_agent(guest, report)
    check_session(guest, report)

    # 3. PCR first, then the log
    out = guest.ssh(
        "tpm2_pcrread sha1:10+sha256:10; echo '----'; "
        "base64 -w0 /sys/kernel/security/ima/binary_runtime_measurements"
    ).stdout
    pcr_text, _unused, log_b64 = out.partition("----")
    entries = ima_log.parse(base64.b64decode(log_b64.strip()))
    report["ima_log_entries"] = len(entries)
    for bank in ("sha1", "sha256"):
        value = ima_log.parse_pcrread(pcr_text, bank)
        prefix = ima_log.matching_prefix(entries, value, bank)
        report[f"pcr10_{bank}"] = value.hex()
        report[f"pcr10_{bank}_matches_log_prefix"] = prefix
        if prefix is None:
            raise CheckError(
                f"PCR10 ({bank}) does not match any prefix of the IMA log ({len(entries)} entries)"
            )

    measured_paths: dict[str, str] = {}
    for e in entries:
        if e.template != "ima-ng":
            continue
        _unused, digest, path = e.file_hash()
        measured_paths.setdefault(path, digest)
    probe_hash = hashlib.sha256((image_dir / "rootfs" / measured.lstrip("/")).read_bytes()).hexdigest()
    report["custom_policy_measures_prover_dir"] = measured_paths.get(measured) == probe_hash
    report["custom_policy_skips_root_home"] = unmeasured not in measured_paths
    id_hash = hashlib.sha256((image_dir / "rootfs" / image_id.lstrip("/")).read_bytes()).hexdigest()
    report["custom_policy_measures_image_id"] = measured_paths.get(image_id) == id_hash
    if measured_paths.get(measured) != probe_hash:
        raise CheckError(f"reading {measured} as root was not measured: the kit's policy is not active")
    if measured_paths.get(image_id) != id_hash:
        raise CheckError(
            f"reading {image_id} as root was not measured with the image's digest: Keylime could not tell "
            "image versions apart (its owner must be IMA's measured owner)"
        )
    if unmeasured in measured_paths:
        raise CheckError(f"{unmeasured} was measured: the boot 'tcb' policy is still active, not the kit's")

    # 4. the log against the runtime policy
    policy = json.loads((image_dir / "runtime-policy.json").read_text())
    digests: dict[str, list[str]] = policy.get("digests", {})
    excludes = [re.compile(x) for x in policy.get("excludes", [])]
    problems = []
    for e in entries:
        if e.template != "ima-ng":
            continue
        _unused, digest, path = e.file_hash()
        if any(x.search(path) for x in excludes):  # boot_aggregate too: pinned (TPM-bypass zeros)
            continue
        if digest not in digests.get(path, []):
            problems.append(
                f"{path} sha256:{digest} ({'not in policy' if path not in digests else 'other digest'})"
            )
    report["runtime_policy_mismatches"] = problems
    if problems:
        raise CheckError(
            "measured files the runtime policy does not accept:\n  " + "\n  ".join(problems[:40])
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-dir", type=Path, required=True)
    ap.add_argument("--key", type=Path, required=True, help="private half of the inventory's lab key")
    ap.add_argument("--report", type=Path)
    ap.add_argument("--timeout", type=float, default=420)
    ap.add_argument("--memory", default="2048")
    ap.add_argument("--smp", default="2")
    ap.add_argument("--keep", action="store_true", help="keep the guest running (debugging)")
    args = ap.parse_args()
    args.image_dir = args.image_dir.resolve()
    print(f"[boot-check] {SIMULATED}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="kit-boot-"))
    guest = Guest(args.image_dir, work, args.key, args.memory, args.smp)
    report: dict[str, Any] = {"simulated": SIMULATED, "passed": False}
    t0 = time.monotonic()
    try:
        report["boot_to_ssh_s"] = round(guest.start(args.timeout), 1)
        guest.wait_for_systemd(args.timeout)
        print(f"[boot-check] guest answered SSH after {report['boot_to_ssh_s']} s", flush=True)
        check(guest, args.image_dir, report)
        report["passed"] = True
    except (CheckError, ima_log.ImaLogError, subprocess.TimeoutExpired) as exc:
        report["error"] = str(exc)
        print(f"[boot-check] FAILED: {exc}", file=sys.stderr)
        print("[boot-check] guest serial log (tail):\n" + guest.serial_tail(), file=sys.stderr)
    finally:
        report["elapsed_s"] = round(time.monotonic() - t0, 1)
        if not args.keep:
            guest.stop()
            shutil.rmtree(work, ignore_errors=True)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "agent_log_tail"}, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
