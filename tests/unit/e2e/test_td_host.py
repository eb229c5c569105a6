"""roles/td_host logic: the QEMU command line, validation, idempotent status/stop (no guest is booted)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import td_launch as th


def spec(tmp_path: Path, **kw: object) -> th.LaunchSpec:
    image = tmp_path / "image"
    image.mkdir(exist_ok=True)
    (image / "disk.raw").write_bytes(b"\0" * 512)
    base: dict[str, object] = {
        "mode": "lab",
        "image_dir": str(image),
        "run_dir": str(tmp_path / "run"),
        "cmdline": "root=/dev/vda rw console=ttyS0",
        "kit_root": str(tmp_path),
        # free ports: a test never takes a running lab's (tests/unit/conftest.py holds them all)
        "ssh_port": th.free_port(),
        "agent_port": th.free_port(),
        "session_port": th.free_port(),
        "registrar_port": th.free_port(),
    }
    base.update(kw)
    return th.LaunchSpec(**base)  # type: ignore[arg-type]


def test_lab_forwards_bind_to_loopback_only(tmp_path: Path) -> None:
    ports = {"ssh_port": 12222, "agent_port": 19002, "session_port": 19010, "registrar_port": 18890}
    argv = th.qemu_argv(spec(tmp_path, **ports))
    netdev = argv[argv.index("-netdev") + 1]
    forwards = [part for part in netdev.split(",") if part.startswith("hostfwd=")]
    assert forwards == [
        "hostfwd=tcp:127.0.0.1:12222-:22",
        "hostfwd=tcp:127.0.0.1:19002-:9002",
        "hostfwd=tcp:127.0.0.1:19010-:9010",
    ]
    guest = [part for part in netdev.split(",") if part.startswith("guestfwd=")]
    assert guest == [
        "guestfwd=tcp:10.0.2.100:8890-cmd:nc -N 127.0.0.1 18890",
        f"guestfwd=tcp:10.0.2.101:8479-cmd:sh -c 'cat {tmp_path / 'run' / 'provider.token'} - "
        f"| nc -N -U {tmp_path / 'run' / 'provider.sock'}'",
    ]
    assert "0.0.0.0" not in " ".join(argv)
    assert argv[1:3] == ["-accel", "tcg,thread=multi,tb-size=256"]
    # no TPM from the host: the TD's vTPM runs inside the guest (roles/td_vtpm)
    assert not any("tpm" in a for a in argv)
    assert argv[argv.index("-append") + 1] == "root=/dev/vda rw console=ttyS0"
    assert any(a.startswith("file:") and a.endswith("serial.log") for a in argv)


def test_tdx_mode_uses_tdx_guest_object_firmware_and_qgs(tmp_path: Path) -> None:
    s = spec(tmp_path, mode="tdx", firmware="/usr/share/ovmf/OVMF.inteltdx.ms.fd", qgs_socket="/run/qgs.sock")
    argv = th.qemu_argv(s)
    obj = argv[argv.index("-object") + 1]
    assert '"qom-type":"tdx-guest"' in obj and "/run/qgs.sock" in obj
    assert "confidential-guest-support=tdx0" in argv[argv.index("-machine") + 1]
    assert argv[argv.index("-bios") + 1].endswith("OVMF.inteltdx.ms.fd")
    assert "tcg" not in " ".join(argv) and "tpm-tis" not in " ".join(argv)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"mode": "kvm"}, "mode must be"),
        ({"ssh_port": 0}, "ssh_port"),
        ({"ssh_port": 2222, "agent_port": 2222}, "must differ"),
        ({"ssh_port": 2222, "session_port": 2222}, "must differ"),
        ({"session_guest_port": 0}, "session_guest_port must be a TCP port"),
        ({"cmdline": "  "}, "empty"),
        ({"cmdline": "a\nb"}, "one line"),
        ({"mode": "tdx"}, "TDX firmware"),
        ({"memory_mib": 64}, "memory_mib"),
        ({"ssh_port": 2222, "registrar_port": 2222}, "must differ"),
        ({"registrar_port": 70000}, "registrar_port"),
        ({"registrar_guest_ip": "10.0.2.2"}, "free address"),
        ({"registrar_guest_ip": "10.0.3.100"}, "free address"),
        ({"registrar_guest_ip": "registrar"}, "IPv4 address"),
        ({"registrar_host": "127.0.0.1 -e /bin/sh"}, "registrar_host"),
        ({"provider_guest_ip": "10.0.2.15"}, "provider_guest_ip must be a free address"),
        ({"provider_guest_ip": "10.0.2.100"}, "must differ"),
        ({"provider_guest_port": 0}, "provider_guest_port"),
        ({"acpi_tables": ("ssdt.aml",)}, "an ACPI table must be an absolute path"),
        ({"acpi_tables": ("/tmp/a,b.aml",)}, "without a comma"),
    ],
)
def test_bad_specs_are_refused(tmp_path: Path, kw: dict[str, object], needle: str) -> None:
    with pytest.raises(th.TdHostError, match=needle):
        spec(tmp_path, **kw).validate()


def test_two_labs_share_no_port_or_folder(tmp_path: Path) -> None:
    """A second lab (the test scenarios') forwards to its own registrar and binds its own ports."""
    site = spec(tmp_path, run_dir=str(tmp_path / "lab" / "site"), registrar_port=8890)
    e2e = spec(
        tmp_path,
        run_dir=str(tmp_path / "lab" / "e2e"),
        ssh_port=12222,
        agent_port=19002,
        registrar_port=18890,
    )
    a, b = th.qemu_argv(site), th.qemu_argv(e2e)
    assert "nc -N 127.0.0.1 18890" in b[b.index("-netdev") + 1]
    assert "nc -N 127.0.0.1 8890" in a[a.index("-netdev") + 1]
    # the guest side is the same for both: one image serves both labs
    assert "guestfwd=tcp:10.0.2.100:8890-" in b[b.index("-netdev") + 1]
    assert {a[a.index("-pidfile") + 1], b[b.index("-pidfile") + 1]} == {
        str(tmp_path / "lab" / "site" / "qemu.pid"),
        str(tmp_path / "lab" / "e2e" / "qemu.pid"),
    }
    assert "hostfwd=tcp:127.0.0.1:19002-:9002" in b[b.index("-netdev") + 1]
    # each launch's guest reaches its own provider: a unix socket in its own run folder, no TCP port
    netdev_b = b[b.index("-netdev") + 1]
    assert f"cat {tmp_path / 'lab' / 'e2e' / 'provider.token'} - | nc -N -U " in netdev_b
    assert f"nc -N -U {tmp_path / 'lab' / 'e2e' / 'provider.sock'}'" in netdev_b
    assert str(tmp_path / "lab" / "site" / "provider.sock") in a[a.index("-netdev") + 1]
    p = th.provider_argv(e2e, "python3")
    assert p[p.index("--listen-unix") + 1] == str(tmp_path / "lab" / "e2e" / "provider.sock")
    assert p[p.index("--token-file") + 1] == str(tmp_path / "lab" / "e2e" / "provider.token")
    assert "--listen" not in p


def test_spec_digest_changes_with_the_command_line(tmp_path: Path) -> None:
    a = spec(tmp_path)
    b = dataclasses.replace(a, cmdline="root=/dev/vda rw console=ttyS0 kit.tamper=1")
    assert a.digest() != b.digest()
    assert a.digest() == th.LaunchSpec(**dataclasses.asdict(a)).digest()
    assert a.digest() != dataclasses.replace(a, session_port=a.session_port + 1).digest()


def test_status_and_stop_of_nothing_are_idempotent(tmp_path: Path) -> None:
    s = spec(tmp_path)
    st = th.status(s)
    assert st["running"] is False and st["simulated"] is True and "SIMULATED" in st["notice"]
    assert th.stop(s) is False
    assert th.stop(s) is False


def test_recycled_pid_is_not_taken_for_our_process(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "qemu.pid").write_text(f"{os.getpid()}\n")  # a live pid that is not QEMU
    assert th.process_state(spec(tmp_path))["qemu"] is False
    assert th.stop(spec(tmp_path)) is False
    assert not (run / "qemu.pid").exists()


def test_stop_kills_only_the_recorded_process(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(run / "overlay.qcow2")])
    try:
        # Popen returns before the child's /proc/PID/cmdline shows the new program (vfork + exec)
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        for _unused in range(100):
            if b"overlay.qcow2" in cmdline.read_bytes():
                break
            time.sleep(0.05)
        (run / "qemu.pid").write_text(f"{proc.pid}\n")
        assert th.process_state(spec(tmp_path))["qemu"] is True
        assert th.stop(spec(tmp_path)) is True
        assert proc.wait(timeout=30) != 0
    finally:
        proc.kill()


def test_failed_boot_reports_the_serial_tail(tmp_path: Path) -> None:
    s = spec(tmp_path)

    def runner(argv: Sequence[str]) -> None:
        if argv[0] == "qemu-system-x86_64":
            (s.run / "serial.log").write_text("line1\nKernel panic - not syncing: VFS\n")
            (s.run / "qemu.pid").write_text("999999999\n")  # QEMU "exited" at once

    s_no_provider = th.LaunchSpec(**{**s.__dict__, "mode": "lab"})
    monkey_popen = subprocess.Popen

    class FakeProc:
        pid = os.getpid()

        def __init__(self) -> None:
            th.provider_socket(s.run).touch()  # the provider "listens"

        def poll(self) -> None:
            return None

    try:
        subprocess.Popen = lambda *a, **k: FakeProc()  # type: ignore[assignment,misc]
        with pytest.raises(th.TdHostError) as err:
            th.start(s_no_provider, sys.executable, boot_timeout=5, runner=runner)
    finally:
        subprocess.Popen = monkey_popen  # type: ignore[misc]
    assert "QEMU exited" in str(err.value)
    assert "Kernel panic" in err.value.serial_tail


@pytest.mark.parametrize(
    ("first_log", "launches"),
    [
        (
            "[ 15.869690] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\nKernel panic - not syncing: Fatal\n",
            2,
        ),
        ("device-mapper: verity: data block 7 is corrupted\nKernel panic - not syncing: VFS\n", 1),
    ],
)
def test_only_a_tcg_code_patching_race_is_booted_once_more(
    tmp_path: Path, first_log: str, launches: int
) -> None:
    """The lab's TCG race (a stale int3) gets one more boot; a dm-verity panic or any other is final."""
    s = th.LaunchSpec(**{**spec(tmp_path).__dict__, "mode": "lab"})
    qemu: list[int] = []

    def runner(argv: Sequence[str]) -> None:
        if argv[0] == "qemu-system-x86_64":
            qemu.append(1)
            log = (
                first_log
                if len(qemu) == 1
                else "device-mapper: verity: corrupted\nKernel panic - not syncing\n"
            )
            (s.run / "serial.log").write_text(log)
            (s.run / "qemu.pid").write_text("999999999\n")  # QEMU "exited" at once

    class FakeProc:
        pid = os.getpid()

        def __init__(self) -> None:
            th.provider_socket(s.run).touch()

        def poll(self) -> None:
            return None

    monkey_popen = subprocess.Popen
    try:
        subprocess.Popen = lambda *a, **k: FakeProc()  # type: ignore[assignment,misc]
        with pytest.raises(th.TdHostError, match="QEMU exited"):
            th.start(s, sys.executable, boot_timeout=5, runner=runner)
    finally:
        subprocess.Popen = monkey_popen  # type: ignore[misc]
    assert len(qemu) == launches
    if launches == 2:  # the first boot's log is kept beside the second's
        assert th.TCG_CODE_PATCH_RACE in (s.run / "serial.log.1").read_text()


def test_missing_netcat_is_named_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = spec(tmp_path)
    started: list[str] = []
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "nc" else "/usr/bin/" + name)
    with pytest.raises(th.TdHostError, match="netcat-openbsd"):
        th.start(s, sys.executable, boot_timeout=5, runner=lambda argv: started.append(argv[0]))
    assert started == []


def test_a_launch_starts_no_vtpm_on_the_host_and_removes_an_old_ones_state(tmp_path: Path) -> None:
    """The host runs no swtpm: a run folder an earlier kit left with a host-side vTPM (its state, its CA)
    loses them at the next stop or start, so no old TPM state waits on the host for a replay."""
    s = spec(tmp_path)
    for name in ("tpm", "swtpm-ca"):
        (s.run / name).mkdir(parents=True)
        (s.run / name / "state").write_text("old")
    (s.run / "swtpm.pid").write_text("999999")
    th.stop(s)
    assert not any((s.run / name).exists() for name in ("tpm", "swtpm-ca", "swtpm.pid"))
    assert th.PROCESSES == ("qemu", "provider") and set(th.process_state(s)) == {"qemu", "provider"}


def test_a_launch_on_a_running_labs_port_is_refused_by_name(
    tmp_path: Path, site_lab_ports_held: dict[str, int]
) -> None:
    """A second launch on a running lab's port is refused before anything starts, naming the port."""
    s = spec(tmp_path, session_port=site_lab_ports_held["guest_session"])
    started: list[str] = []
    with pytest.raises(th.TdHostError) as err:
        th.start(s, sys.executable, boot_timeout=5, runner=lambda argv: started.append(argv[0]))
    assert f"127.0.0.1:{site_lab_ports_held['guest_session']} (session_port) already in use" in str(err.value)
    assert "bin/kit status" in str(err.value)
    assert started == []
    assert str(s.ssh_port) not in str(err.value)


def test_a_launch_whose_provider_runs_elsewhere_needs_its_socket_and_never_starts_one(tmp_path: Path) -> None:
    """The lab's TD host launches with the controller's provider: no socket, nothing starts; with one, no
    provider of its own is spawned, the forward is the same, and a stop leaves the controller's socket."""
    s = spec(tmp_path, provider_managed=False)
    started: list[str] = []
    with pytest.raises(th.TdHostError, match="the controller starts it before the launch"):
        th.start(s, sys.executable, boot_timeout=5, runner=lambda argv: started.append(argv[0]))
    assert started == []
    assert th.qemu_argv(s) == th.qemu_argv(spec(tmp_path, **{**s.__dict__, "provider_managed": True}))
    assert "tdx-sim-provider" not in " ".join(th.provider_argv(s, "py")[:1])
    s.run.mkdir(exist_ok=True)
    th.provider_socket(s.run).touch()
    th.provider_token(s.run).write_text("token\n")
    assert th.process_state(s)["provider"] is True
    assert th.stop(s) is False
    assert th.provider_socket(s.run).exists() and th.provider_token(s.run).exists()


def test_an_added_acpi_table_goes_to_qemu_and_to_the_provider_that_measures_it(tmp_path: Path) -> None:
    """The launch hands QEMU each table (-acpitable file=) and tells its SIMULATED provider the same files,
    so that the lab's RTMR0 has one more event for each; a launch without one is the reference's."""
    plain = spec(tmp_path)
    added = spec(tmp_path, acpi_tables=("/srv/host/ssdt.aml",))
    added.validate()
    argv = th.qemu_argv(added)
    assert argv[argv.index("-acpitable") + 1] == "file=/srv/host/ssdt.aml"
    assert "-acpitable" not in th.qemu_argv(plain)
    provider = th.provider_argv(added, "py")
    assert provider[provider.index("--acpitable") + 1] == "/srv/host/ssdt.aml"
    assert "--acpitable" not in th.provider_argv(plain, "py")
    assert th.launch_digest(added) != th.launch_digest(plain)
