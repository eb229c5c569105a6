"""Launch, stop and inspect the TD guest (roles/td_host). Typed, standard library only.

Two modes:

- ``tdx``: a real Intel TDX host. QEMU with the ``tdx-guest`` object (quote-generation socket to the
  host's QGS), a TDX firmware (TDVF), KVM, direct kernel boot. Written for real hosts; not runnable in
  the lab (no TDX hardware).
- ``lab``: the same image under QEMU TCG, user-mode networking whose forwards bind to 127.0.0.1 only, and the
  SIMULATED TDX quote provider (``bin/tdx-sim-provider``) standing where the QGS would be. The provider
  measures the very kernel, initrd and command line handed to QEMU, so a launch with another command line
  yields another RTMR2. Every output of this mode says SIMULATED.

Neither mode attaches a TPM: the TD's vTPM lives in the TD (roles/td_vtpm), where the host cannot reach its
keys.

State lives in ``run_dir``: ``launch.json`` (what was launched), pid files, the serial log (kept across
stops, rotated to ``serial.log.1`` on the next start). Every port and
folder comes from the spec, so two launches with their own run folders and ports (two labs on one
machine) never meet: the guest reaches its own registrar through a forward of its own launch.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SIMULATED_NOTICE = (
    "SIMULATED: lab launch under QEMU TCG (the TD's vTPM runs inside the guest) and the SIMULATED TDX quote "
    "provider (test PKI). Not a TDX trust domain and not a security boundary."
)
MODES = ("lab", "tdx")
PROCESSES = ("qemu", "provider")


class TdHostError(RuntimeError):
    """A launch problem; ``serial_tail`` holds the end of the guest's serial log when there is one."""

    def __init__(self, message: str, serial_tail: str = "") -> None:
        super().__init__(message)
        self.serial_tail = serial_tail


@dataclass(frozen=True)
class LaunchSpec:
    """Everything that decides the guest that runs. Two equal specs mean the same guest."""

    mode: str
    image_dir: str
    run_dir: str
    cmdline: str
    # This machine's loopback ports the launch binds (SSH, agent, session service) and the registrar's port it
    # forwards the guest to. They have no default: each launch names its own (the lab's from its port table,
    # kit_lab.yml; tests and the image check take free ones), so no launch takes a running lab's port.
    ssh_port: int
    agent_port: int
    # The guest's session service (session mode: roles/zk_prover kit-session), forwarded like the agent.
    session_port: int
    registrar_port: int
    memory_mib: int = 2048
    smp: int = 2
    agent_guest_port: int = 9002
    session_guest_port: int = 9010
    # The guest reaches its own SIMULATED provider at provider_guest_ip:provider_guest_port (baked into the
    # image); this launch forwards that address to its provider's unix socket in run_dir, and the provider
    # answers only connections that this launch's QEMU opens.
    provider_guest_ip: str = "10.0.2.101"
    provider_guest_port: int = 8479
    # The guest reaches its registrar at registrar_guest_ip:registrar_guest_port, an address of QEMU's user
    # network that this launch forwards to registrar_host:registrar_port (guestfwd). One image thus serves
    # every lab on a machine, each with its own registrar port.
    registrar_host: str = "127.0.0.1"
    registrar_guest_ip: str = "10.0.2.100"
    registrar_guest_port: int = 8890
    firmware: str = ""
    qgs_socket: str = "/var/run/tdx-qgs/qgs.socket"
    kit_root: str = ""
    # Lab: True, the launch runs its own SIMULATED provider (state in run_dir/tdx-sim: unit tests, the image
    # check); False, the provider runs elsewhere (on the controller, module tdx_sim_provider: the lab, whose
    # TD host must not hold the stand-in's key) and the launch only forwards its guest to run_dir's socket.
    provider_managed: bool = True
    # ACPI tables the launch adds to QEMU's own (-acpitable file=...): host-chosen firmware configuration,
    # measured into RTMR0 (by TDVF on TDX; in the lab by the SIMULATED provider, told the same files).
    acpi_tables: tuple[str, ...] = field(default_factory=tuple)
    extra_qemu_args: tuple[str, ...] = field(default_factory=tuple)

    def validate(self) -> None:
        if self.mode not in MODES:
            raise TdHostError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        ports = (
            "ssh_port",
            "agent_port",
            "agent_guest_port",
            "session_port",
            "session_guest_port",
            "provider_guest_port",
            "registrar_port",
            "registrar_guest_port",
        )
        for name in ports:
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise TdHostError(f"{name} must be a TCP port (1-65535), not {port}")
        if len({self.ssh_port, self.agent_port, self.session_port, self.registrar_port}) != 4:
            raise TdHostError("ssh_port, agent_port, session_port and registrar_port must differ")
        check_guest_forward_ip(self.registrar_guest_ip, "registrar_guest_ip")
        check_guest_forward_ip(self.provider_guest_ip, "provider_guest_ip")
        if self.provider_guest_ip == self.registrar_guest_ip:
            raise TdHostError("provider_guest_ip and registrar_guest_ip must differ")
        if not re.fullmatch(r"[A-Za-z0-9.:-]+", self.registrar_host):
            raise TdHostError(f"registrar_host must be an address or host name, not {self.registrar_host!r}")
        if self.memory_mib < 512 or self.smp < 1:
            raise TdHostError("memory_mib must be >= 512 and smp >= 1")
        if not self.cmdline.strip():
            raise TdHostError("the kernel command line is empty")
        if "\n" in self.cmdline:
            raise TdHostError("the kernel command line must be one line")
        for table in self.acpi_tables:
            if not table.startswith("/") or "," in table:
                raise TdHostError(f"an ACPI table must be an absolute path without a comma, not {table!r}")
        if self.mode == "tdx" and not self.firmware:
            raise TdHostError(
                "mode tdx needs a TDX firmware (TDVF), e.g. /usr/share/ovmf/OVMF.inteltdx.ms.fd"
            )

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    @property
    def run(self) -> Path:
        return Path(self.run_dir)

    @property
    def image(self) -> Path:
        return Path(self.image_dir)

    def provider(self) -> ProviderSpec:
        """The provider of this launch, when it runs its own (its state in the run folder)."""
        return ProviderSpec.for_image(
            str(self.run / "tdx-sim"),
            self.run_dir,
            self.image_dir,
            self.cmdline,
            self.firmware,
            self.kit_root,
            self.memory_mib,
            self.smp,
            self.acpi_tables,
        )

    def disk(self) -> tuple[Path, str]:
        for name, fmt in (("disk.raw", "raw"), ("disk.qcow2", "qcow2")):
            if (self.image / name).exists():
                return self.image / name, fmt
        raise TdHostError(f"no disk.raw or disk.qcow2 in {self.image_dir}: build the image first")


# QEMU's user network: 10.0.2.2 is the host, 10.0.2.3 the DNS server, 10.0.2.15 the guest's DHCP address.
USER_NET = ipaddress.ip_network("10.0.2.0/24")
USER_NET_TAKEN = {
    ipaddress.ip_address(a) for a in ("10.0.2.0", "10.0.2.2", "10.0.2.3", "10.0.2.15", "10.0.2.255")
}


def check_guest_forward_ip(value: str, name: str = "registrar_guest_ip") -> None:
    """A guestfwd address must be a free address of QEMU's user network (not the host, DNS or guest)."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise TdHostError(f"{name} must be an IPv4 address, not {value!r}") from None
    if addr not in USER_NET or addr in USER_NET_TAKEN:
        raise TdHostError(
            f"{name} must be a free address of QEMU's user network {USER_NET} "
            f"(not {', '.join(sorted(str(a) for a in USER_NET_TAKEN))}), not {value}"
        )


def hostfwd(spec: LaunchSpec) -> str:
    """User-mode networking forwards: host->guest bound to the host's loopback only, guest->registrar."""
    ssh = f"hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22"
    agent = f"hostfwd=tcp:127.0.0.1:{spec.agent_port}-:{spec.agent_guest_port}"
    session = f"hostfwd=tcp:127.0.0.1:{spec.session_port}-:{spec.session_guest_port}"
    # One netcat per connection the guest opens (slirp runs the command with the connection on stdin/stdout).
    registrar = (
        f"guestfwd=tcp:{spec.registrar_guest_ip}:{spec.registrar_guest_port}"
        f"-cmd:nc -N {spec.registrar_host} {spec.registrar_port}"
    )
    forwards = f"{ssh},{agent},{session},{registrar}"
    if spec.mode == "lab":
        # The guest's own provider: a unix socket in this launch's run folder (no TCP port anyone can reach).
        # The launch's token goes first on every connection (tdx_sim.check_token); slirp parses the command
        # like a shell (quotes), and a netdev option may hold no comma.
        forwards += (
            f",guestfwd=tcp:{spec.provider_guest_ip}:{spec.provider_guest_port}"
            f"-cmd:sh -c 'cat {provider_token(spec.run)} - | nc -N -U {provider_socket(spec.run)}'"
        )
    return forwards


def provider_socket(run: Path) -> Path:
    return run / "provider.sock"


def provider_token(run: Path) -> Path:
    return run / "provider.token"


def qemu_argv(spec: LaunchSpec) -> list[str]:
    """The QEMU command line for the spec (pure: no files are touched)."""
    run = spec.run
    argv = ["qemu-system-x86_64"]
    if spec.mode == "tdx":
        qgs = json.dumps({"type": "unix", "path": spec.qgs_socket})
        tdx_object = json.dumps(
            {"qom-type": "tdx-guest", "id": "tdx0", "quote-generation-socket": json.loads(qgs)},
            separators=(",", ":"),
        )
        argv += [
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-machine",
            "q35,kernel-irqchip=split,confidential-guest-support=tdx0,hpet=off",
            "-object",
            tdx_object,
            "-bios",
            spec.firmware,
            "-nodefaults",
        ]
    else:
        argv += ["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max", "-machine", "q35"]
    argv += [
        "-m",
        f"{spec.memory_mib}M",
        "-smp",
        str(spec.smp),
        "-display",
        "none",
        "-vga",
        "none",
        "-monitor",
        "none",
        # A TD cannot reboot; a guest that panics (e.g. dm-verity found a changed block) stops here too.
        "-no-reboot",
        "-kernel",
        str(spec.image / "vmlinuz"),
        "-initrd",
        str(spec.image / "initrd.img"),
        "-append",
        spec.cmdline,
        "-drive",
        f"file={run / 'overlay.qcow2'},if=virtio,format=qcow2",
        "-netdev",
        f"user,id=n0,{hostfwd(spec)}",
        "-device",
        "virtio-net-pci,netdev=n0",
    ]
    for table in spec.acpi_tables:
        argv += ["-acpitable", f"file={table}"]
    argv += [
        "-serial",
        f"file:{run / 'serial.log'}",
        "-pidfile",
        str(run / "qemu.pid"),
        "-daemonize",
        *spec.extra_qemu_args,
    ]
    return argv


def launch_digest(spec: LaunchSpec) -> str:
    """The spec and the command lines it makes: a kit update that launches differently restarts the guest."""
    argv = qemu_argv(spec) + (
        provider_argv(spec, "python") if spec.mode == "lab" and spec.provider_managed else []
    )
    return hashlib.sha256(json.dumps([spec.digest(), argv]).encode()).hexdigest()


@dataclass(frozen=True)
class ProviderSpec:
    """The SIMULATED TDX provider of one launch: the stand-in for the TDX module and its quoting enclave.

    It measures the kernel, initrd, command line and firmware the launch hands QEMU, keeps its test PKI (the
    simulated PCK key) in ``state_dir`` and answers on ``run_dir``/provider.sock only connections that carry
    the token it writes to ``run_dir``/provider.token. In the lab it runs on the controller, so that the TD
    host, which owns the run folder, never holds the key that signs quotes.
    """

    state_dir: str
    run_dir: str
    kernel: str
    initrd: str
    cmdline: str
    firmware: str = ""
    kit_root: str = ""
    # The VM shape its SIMULATED RTMR0 events are written for (rtmr0_reference): the launch's.
    memory_mib: int = 2048
    smp: int = 2
    # The ACPI tables the launch adds (its RTMR0 events get one more table each).
    acpi_tables: tuple[str, ...] = ()

    @classmethod
    def for_image(
        cls,
        state_dir: str,
        run_dir: str,
        image_dir: str,
        cmdline: str,
        firmware: str,
        kit_root: str,
        memory_mib: int = 2048,
        smp: int = 2,
        acpi_tables: Sequence[str] = (),
    ) -> ProviderSpec:
        """The provider of a launch of the image in ``image_dir`` (its vmlinuz and initrd.img)."""
        image = Path(image_dir)
        return cls(
            state_dir=state_dir,
            run_dir=run_dir,
            kernel=str(image / "vmlinuz"),
            initrd=str(image / "initrd.img"),
            cmdline=cmdline,
            firmware=firmware,
            kit_root=kit_root,
            memory_mib=memory_mib,
            smp=smp,
            acpi_tables=tuple(acpi_tables),
        )

    @property
    def state(self) -> Path:
        return Path(self.state_dir)

    def argv(self, python: str) -> list[str]:
        argv = [
            python,
            str(Path(self.kit_root) / "bin" / "tdx-sim-provider"),
            "serve",
            "--state",
            self.state_dir,
            "--kernel",
            self.kernel,
            "--initrd",
            self.initrd,
            "--cmdline",
            self.cmdline,
            "--listen-unix",
            str(provider_socket(Path(self.run_dir))),
            "--token-file",
            str(provider_token(Path(self.run_dir))),
            "--memory-mib",
            str(self.memory_mib),
            "--smp",
            str(self.smp),
        ]
        if self.firmware:
            argv += ["--firmware", self.firmware]
        for table in self.acpi_tables:
            argv += ["--acpitable", table]
        return argv

    def digest(self) -> str:
        return hashlib.sha256(json.dumps([asdict(self), self.argv("python")]).encode()).hexdigest()


def provider_argv(spec: LaunchSpec, python: str) -> list[str]:
    """The SIMULATED provider measures what QEMU is given (kernel, initrd, command line, firmware)."""
    return spec.provider().argv(python)


def provider_pidfile(provider: ProviderSpec) -> Path:
    return provider.state / "provider.pid"


def provider_running(provider: ProviderSpec) -> bool:
    return (
        pid_alive(read_pid(provider_pidfile(provider)), "tdx-sim-provider")
        and provider_socket(Path(provider.run_dir)).exists()
    )


def provider_status(provider: ProviderSpec) -> dict[str, Any]:
    running = provider_running(provider)
    try:
        recorded = json.loads((provider.state / "provider.json").read_text(encoding="utf-8")).get("digest")
    except (OSError, ValueError, AttributeError):
        recorded = None
    return {
        "running": running,
        "matches_spec": running and recorded == provider.digest(),
        "socket": str(provider_socket(Path(provider.run_dir))),
        "collateral": str(provider.state / "collateral.json"),
        "root": str(provider.state / "root.der"),
        "simulated": True,
        "notice": SIMULATED_NOTICE,
    }


def provider_stop(provider: ProviderSpec) -> bool:
    """Stop the provider (idempotent); its socket and token go with it, its PKI stays."""
    changed = _kill(provider_pidfile(provider), "tdx-sim-provider", grace=5.0)
    run = Path(provider.run_dir)
    for path in (provider_socket(run), provider_token(run), provider.state / "provider.json"):
        with contextlib.suppress(OSError):
            path.unlink()
    return changed


def provider_start(
    provider: ProviderSpec, python: str, runner: Runner | None = None, wait: float = 20.0
) -> bool:
    """Start the provider unless the same one runs (True when started): fresh collateral, then serve."""
    current = provider_status(provider)
    if current["matches_spec"]:
        return False
    provider_stop(provider)
    Path(provider.run_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    provider.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Every start: fresh collateral (valid 30 days), and a PKI under the fixed test root.
    (runner or _run)(
        [
            python,
            str(Path(provider.kit_root) / "bin" / "tdx-sim-provider"),
            "setup",
            "--state",
            provider.state_dir,
        ]
    )
    with open(provider.state / "provider.log", "ab") as log:
        proc = subprocess.Popen(
            provider.argv(python),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    provider_pidfile(provider).write_text(f"{proc.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + wait
    while not provider_socket(Path(provider.run_dir)).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (provider.state / "provider.log").read_text(errors="replace")[-800:]
            provider_stop(provider)
            raise TdHostError(f"the SIMULATED TDX provider did not start: {tail}")
        time.sleep(0.1)
    (provider.state / "provider.json").write_text(
        json.dumps({"digest": provider.digest()}) + "\n", encoding="utf-8"
    )
    return True


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def pid_alive(pid: int | None, expect: str = "") -> bool:
    """The process exists (and its command line contains ``expect``: a recycled pid does not count)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if not expect:
        return True
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return expect in cmd


def process_state(spec: LaunchSpec) -> dict[str, bool]:
    """What runs; a provider run elsewhere counts by its socket in the run folder (its pid is not ours)."""
    run = spec.run
    return {
        "qemu": pid_alive(read_pid(run / "qemu.pid"), str(run / "overlay.qcow2")),
        "provider": (
            provider_running(spec.provider()) if spec.provider_managed else provider_socket(run).exists()
        ),
    }


def serial_tail(run: Path, lines: int = 40) -> str:
    try:
        text = (run / "serial.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no serial log)"
    return "\n".join(text.splitlines()[-lines:])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ssh_banner(port: int, timeout: float = 5.0) -> bool:
    """True when something on the port speaks SSH (QEMU's forward accepts connections before sshd runs)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def load_launch(run: Path) -> dict[str, Any]:
    try:
        data = json.loads((run / "launch.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def status(spec: LaunchSpec) -> dict[str, Any]:
    run = spec.run
    procs = process_state(spec)
    launch = load_launch(run)
    wanted = ("qemu", "provider") if spec.mode == "lab" else ("qemu",)
    running = all(procs[p] for p in wanted)
    result: dict[str, Any] = {
        "running": running,
        "processes": procs,
        "matches_spec": running and launch.get("spec_digest") == launch_digest(spec),
        "launched_cmdline": launch.get("cmdline", ""),
        "ssh_port": spec.ssh_port,
        "agent_port": spec.agent_port,
        "session_port": spec.session_port,
        "serial_log": str(run / "serial.log"),
        "simulated": spec.mode == "lab",
        "notice": SIMULATED_NOTICE if spec.mode == "lab" else "TDX trust domain",
        "provider_url_from_guest": (
            f"http://{spec.provider_guest_ip}:{spec.provider_guest_port}/quote" if spec.mode == "lab" else ""
        ),
        "provider_socket": str(provider_socket(run)) if spec.mode == "lab" else "",
    }
    if running:
        result["ssh_ready"] = ssh_banner(spec.ssh_port)
    return result


Runner = Callable[[Sequence[str]], None]


def _run(argv: Sequence[str]) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TdHostError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-1500:]}")


def _kill(pidfile: Path, expect: str, grace: float = 20.0) -> bool:
    pid = read_pid(pidfile)
    if not pid_alive(pid, expect):
        with contextlib.suppress(OSError):
            pidfile.unlink()
        return False
    if pid is None:  # pid_alive is False for None; this tells the type checker
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pid, expect) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid, expect):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        pidfile.unlink()
    return True


def stop(spec: LaunchSpec) -> bool:
    """Stop QEMU and the provider (idempotent). Keeps the serial log. Removes what an earlier kit's launch
    left of a host-side vTPM (its state and socket): no TPM is the host's any more."""
    run = spec.run
    changed = _kill(run / "qemu.pid", str(run / "overlay.qcow2"))
    changed = _kill(run / "swtpm.pid", str(run / "tpm")) or changed
    if spec.provider_managed:
        changed = provider_stop(spec.provider()) or changed
    for name in ("overlay.qcow2", "swtpm.sock", "swtpm.pid"):
        with contextlib.suppress(OSError):
            (run / name).unlink()
    for name in ("tpm", "swtpm-ca"):
        shutil.rmtree(run / name, ignore_errors=True)
    return changed


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing holds now (the kernel's choice), for a launch of its own."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_ports_free(spec: LaunchSpec) -> None:
    ports = {"ssh_port": spec.ssh_port, "agent_port": spec.agent_port, "session_port": spec.session_port}
    busy = [f"127.0.0.1:{port} ({name})" for name, port in ports.items() if port_open(port)]
    if busy:
        raise TdHostError(
            f"{', '.join(busy)} already in use: another guest or service holds it. 'bin/kit status' shows a "
            "running lab ('bin/kit stop' stops it); or give this launch other ports"
        )


# Multi-threaded TCG now and then runs a stale translation of kernel code that the kernel has just patched
# (text_poke_bp: int3, then the new bytes): the guest dies in "Oops: int3" at an instruction that reads as a
# nop, a panic no TDX hardware gives (seen once, 2026-12-07, at 15.9 s into a boot, in kmem_cache_free).
TCG_CODE_PATCH_RACE = "Oops: int3"


def start(spec: LaunchSpec, python: str, boot_timeout: float, runner: Runner = _run) -> dict[str, Any]:
    """Start the guest unless the same spec already runs; wait for SSH. Returns status + ``changed``.

    In the lab (TCG), a boot that dies of ``TCG_CODE_PATCH_RACE`` is launched once more, and the result says
    so (``boot_attempts``, ``retried_because``); any other failure (a dm-verity panic, a timeout) is final.
    """
    spec.validate()
    current = status(spec)
    if current["running"] and current["matches_spec"]:
        return {**current, "changed": False, "boot_seconds": 0.0, "boot_attempts": 0}
    try:
        return {**_start_once(spec, python, boot_timeout, runner), "boot_attempts": 1}
    except TdHostError:
        serial = spec.run / "serial.log"
        text = serial.read_text(encoding="utf-8", errors="replace") if serial.exists() else ""
        if spec.mode != "lab" or TCG_CODE_PATCH_RACE not in text:
            raise
    why = f"the first boot died of a TCG code-patching race ({TCG_CODE_PATCH_RACE!r}; serial.log.1 keeps it)"
    return {**_start_once(spec, python, boot_timeout, runner), "boot_attempts": 2, "retried_because": why}


def _start_once(spec: LaunchSpec, python: str, boot_timeout: float, runner: Runner) -> dict[str, Any]:
    stop(spec)
    run = spec.run
    run.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_ports_free(spec)
    if shutil.which("nc") is None:
        raise TdHostError(
            "netcat (nc) is missing: the registrar forward needs it (apt-get install netcat-openbsd)"
        )
    if spec.mode == "lab" and not spec.provider_managed and not provider_socket(run).exists():
        raise TdHostError(
            f"no SIMULATED TDX provider answers on {provider_socket(run)}: the controller starts it "
            "before the launch (roles/td_host, teeproof.kit.tdx_sim_provider)"
        )
    disk, fmt = spec.disk()
    serial = run / "serial.log"
    if serial.exists():
        serial.replace(run / "serial.log.1")
    if spec.mode == "lab" and spec.provider_managed:
        provider_start(spec.provider(), python, runner)
    runner(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(disk), "-F", fmt, str(run / "overlay.qcow2")]
    )
    started = time.monotonic()
    runner(qemu_argv(spec))
    (run / "launch.json").write_text(
        json.dumps(
            {
                "spec": asdict(spec),
                "spec_digest": launch_digest(spec),
                "cmdline": spec.cmdline,
                "simulated": spec.mode == "lab",
            },
            indent=2,
            sort_keys=True,
        )
        + "\n",
        encoding="utf-8",
    )
    while True:
        procs = process_state(spec)
        if not procs["qemu"]:
            raise TdHostError("QEMU exited before the guest answered SSH", serial_tail(run))
        if spec.mode == "lab" and not procs["provider"]:
            log = spec.provider().state / "provider.log"
            why = (
                log.read_text(errors="replace")[-800:]
                if spec.provider_managed and log.exists()
                else f"its socket {provider_socket(run)} is gone"
            )
            raise TdHostError(f"the SIMULATED TDX provider is gone: {why}", serial_tail(run))
        if ssh_banner(spec.ssh_port):
            break
        if time.monotonic() - started > boot_timeout:
            tail = serial_tail(run)
            stop(spec)
            raise TdHostError(
                f"the guest did not answer SSH on 127.0.0.1:{spec.ssh_port} within {boot_timeout:.0f} s", tail
            )
        time.sleep(3)
    result = status(spec)
    return {**result, "changed": True, "boot_seconds": round(time.monotonic() - started, 1)}
