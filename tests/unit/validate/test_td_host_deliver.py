"""roles/td_host's delivery: the image builder's launch files reach the TD host's own folder, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PLAY = """
- name: Deliver the image
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Deliver
      ansible.builtin.include_role:
        name: td_host
        tasks_from: deliver
"""


def deliver(tmp_path: Path, source: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "deliver.yml"
    playbook.write_text(PLAY)
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "default"}
    extra = {
        "td_host_image_source": str(source),
        "td_host_image_dir": str(dest),
        "ansible_python_interpreter": str(Path(sys.executable).absolute()),
    }
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    argv += [str(playbook), "-e", json.dumps(extra)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)


def image(folder: Path, names: tuple[str, ...] = ("vmlinuz", "initrd.img", "cmdline", "disk.raw")) -> Path:
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(name.encode() * 1000)
    (folder / "rootfs.entries.json").write_text("{}")  # not a launch file: stays behind
    return folder


def test_the_launch_files_are_copied_once(tmp_path: Path) -> None:
    source = image(tmp_path / "image")
    dest = tmp_path / "td-host" / "image"
    first = deliver(tmp_path, source, dest)
    assert first.returncode == 0, first.stdout[-3000:]
    assert sorted(p.name for p in dest.iterdir()) == ["cmdline", "disk.raw", "initrd.img", "vmlinuz"]
    assert (dest / "disk.raw").read_bytes() == (source / "disk.raw").read_bytes()
    again = deliver(tmp_path, source, dest)
    assert again.returncode == 0
    assert "changed=0" in again.stdout
    (source / "cmdline").write_text("console=ttyS0 other")
    changed = deliver(tmp_path, source, dest)
    assert "changed=1" in changed.stdout
    assert (dest / "cmdline").read_text() == "console=ttyS0 other"


def test_a_source_without_a_disk_is_refused_before_anything_is_copied(tmp_path: Path) -> None:
    source = image(tmp_path / "image", ("vmlinuz", "initrd.img", "cmdline"))
    dest = tmp_path / "td-host" / "image"
    done = deliver(tmp_path, source, dest)
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0
    assert "must hold vmlinuz, initrd.img, cmdline and one of disk.raw, disk.qcow2" in out
    assert "(it holds: cmdline, initrd.img, vmlinuz)" in out
    assert not dest.exists()


def test_a_missing_source_is_named(tmp_path: Path) -> None:
    done = deliver(tmp_path, tmp_path / "nope", tmp_path / "dest")
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0
    assert "it holds: none of them" in out
