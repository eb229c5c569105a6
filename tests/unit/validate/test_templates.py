"""templates/: the bare-metal TDX inventory and the Vault file, rendered by the documented command's
playbook (playbooks/render-template.yml, what `bin/kit render` runs), then read back with
`ansible-inventory --list`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
HOSTS = {"kit_templates_tdx_host": "tdx1.example.org", "kit_templates_client_host": "client.example.org"}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_LOG_PATH",)}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def render(name: str, dest: Path, **extra: Any) -> subprocess.CompletedProcess[str]:
    argv = [
        str(BIN / "ansible-playbook"),
        "-i",
        "localhost,",
        str(ROOT / "playbooks" / "render-template.yml"),
        "-e",
        json.dumps({"kit_templates_template": name, "kit_templates_dest": str(dest), **extra}),
    ]
    return subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=ROOT, check=False)


def inventory(folder: Path, password_file: Path | None = None) -> dict[str, Any]:
    argv = [str(BIN / "ansible-inventory"), "-i", str(folder), "--list"]
    if password_file:
        argv += ["--vault-password-file", str(password_file)]
    run = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=ROOT, check=False)
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    top = tmp_path_factory.mktemp("render")
    password = top / "vault-password"
    password.write_text("correct horse battery staple\n")
    folder = top / "site"
    run = render("inventory-tdx", folder, **HOSTS)
    assert run.returncode == 0, run.stdout[-2000:]
    run = render(
        "vault",
        folder / "host_vars" / "keylime-client" / "vault.yml",
        kit_templates_vault_password_file=str(password),
    )
    assert run.returncode == 0, run.stdout[-2000:]
    return folder, password


def test_the_bare_metal_inventory_lists_the_parties(rendered: tuple[Path, Path]) -> None:
    folder, password = rendered
    inv = inventory(folder, password)
    assert inv["controller"]["hosts"] == ["localhost"]
    assert inv["image_builder"]["hosts"] == ["localhost"]
    assert inv["td_host"]["hosts"] == ["tdx-host"]
    assert inv["td"]["hosts"] == ["td-guest"]
    assert inv["verifier"]["hosts"] == ["keylime-client"]
    hostvars = inv["_meta"]["hostvars"]
    assert hostvars["tdx-host"]["ansible_host"] == "tdx1.example.org"
    assert hostvars["tdx-host"]["td_host_mode"] == "tdx"
    assert hostvars["tdx-host"]["td_host_registrar_host"] == "client.example.org"
    assert hostvars["keylime-client"]["ansible_host"] == "client.example.org"
    assert "ProxyJump=root@tdx1.example.org" in hostvars["td-guest"]["ansible_ssh_common_args"]
    # the kit's shared group_vars are linked, and nothing turns simulation on
    assert hostvars["keylime-client"]["kit_tdx_required_measurements"]
    assert all(not v.get("kit_tdx_simulated") for v in hostvars.values())


def test_the_vault_file_holds_every_secret_and_only_encrypted(rendered: tuple[Path, Path]) -> None:
    folder, password = rendered
    client = inventory(folder, password)["_meta"]["hostvars"]["keylime-client"]
    secrets = {k: v for k, v in client.items() if k.startswith("vault_")}
    assert set(secrets) == {
        "vault_keylime_server_ca_password",
        "vault_keylime_server_database_password",
        "vault_keylime_tenant_client_key_content",
    }
    assert len(secrets["vault_keylime_server_ca_password"]) == 40
    assert secrets["vault_keylime_server_ca_password"] != secrets["vault_keylime_server_database_password"]
    # every vault_ variable the inventory references exists in the Vault file
    hosts_text = (folder / "hosts.yml").read_text()
    for name in secrets:
        assert name in hosts_text or name == "vault_keylime_tenant_client_key_content"
    on_disk = (folder / "host_vars" / "keylime-client" / "vault.yml").read_text()
    assert on_disk.startswith("$ANSIBLE_VAULT;1.2;AES256;kit\n")
    assert secrets["vault_keylime_server_ca_password"] not in on_disk
    mode = (folder / "host_vars" / "keylime-client" / "vault.yml").stat().st_mode & 0o777
    assert mode == 0o600


def test_an_existing_file_is_never_overwritten(rendered: tuple[Path, Path]) -> None:
    folder, password = rendered
    before = (folder / "hosts.yml").read_bytes()
    run = render("inventory-tdx", folder, **{**HOSTS, "kit_templates_tdx_host": "other.example.org"})
    assert run.returncode != 0
    assert "exists; nothing was written" in run.stdout
    assert (folder / "hosts.yml").read_bytes() == before
    vault = folder / "host_vars" / "keylime-client" / "vault.yml"
    vault_before = vault.read_bytes()
    run = render("vault", vault, kit_templates_vault_password_file=str(password))
    assert run.returncode != 0
    assert vault.read_bytes() == vault_before


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        ({"kit_templates_client_host": "tdx1.example.org"}, "two different host names"),
        ({"kit_templates_tdx_host": "not a host!"}, "two different host names"),
        ({"kit_templates_client_host": ""}, "two different host names"),
        ({"kit_templates_tdx_user": "Root; rm"}, "user"),
        ({"kit_templates_collateral": "relative.json"}, "absolute kit_templates_collateral"),
        ({"kit_templates_template": "nginx"}, "kit_templates_template"),
    ],
)
def test_bad_inventory_input_is_refused_before_anything_is_written(
    tmp_path: Path, extra: dict[str, str], expect: str
) -> None:
    run = render("inventory-tdx", tmp_path / "site", **{**HOSTS, **extra})
    assert run.returncode != 0
    assert expect in run.stdout
    assert not (tmp_path / "site").exists()


def test_vault_without_a_password_file_is_refused(tmp_path: Path) -> None:
    for password in ("", str(tmp_path / "missing")):
        run = render("vault", tmp_path / "vault.yml", kit_templates_vault_password_file=password)
        assert run.returncode != 0
        assert "non-empty file with the Vault password" in run.stdout
        assert not (tmp_path / "vault.yml").exists()


def _playbook(
    inventory_dir: Path, playbook: str, password: Path | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory_dir), str(ROOT / "playbooks" / playbook)]
    if password:
        argv += ["--vault-password-file", str(password)]
    return subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=ROOT, check=False)


@pytest.mark.parametrize(
    ("where", "playbook"),
    [("td_host", "prove.yml"), ("verifier", "site.yml"), ("address", "reference-set.yml")],
)
def test_a_real_inventory_with_the_td_host_beside_a_trusted_party_is_refused_before_anything_runs(
    rendered: tuple[Path, Path], tmp_path: Path, where: str, playbook: str
) -> None:
    """roles/parties, the first play of every entry playbook, on the rendered inventory made wrong."""
    folder, password = rendered
    bad = tmp_path / "inventory"
    bad.mkdir()
    (bad / "group_vars").symlink_to((folder / "group_vars").resolve())
    (bad / "host_vars").symlink_to((folder / "host_vars").resolve())
    text = (folder / "hosts.yml").read_text()
    if where == "td_host":  # the controller's machine launches the TD
        text = text.replace(
            "    td_host:\n      hosts:\n", "    td_host:\n      hosts:\n        localhost:\n"
        )
        needle = "td_host host 'localhost' is also in 'controller'"
    elif where == "verifier":  # the verifier's machine launches the TD
        text = text.replace(
            "    verifier:\n      hosts:\n", "    verifier:\n      hosts:\n        tdx-host:\n"
        )
        needle = "td_host host 'tdx-host' is also in 'verifier'"
    else:  # the TD host under the verifier's address
        text = text.replace("ansible_host: tdx1.example.org", "ansible_host: client.example.org")
        needle = "td_host host 'tdx-host' has the address of verifier host 'keylime-client'"
    (bad / "hosts.yml").write_text(text)
    run = _playbook(bad, playbook, password)
    assert run.returncode != 0
    assert needle in " ".join(run.stdout.split())
    assert "Nothing was run" in run.stdout
    # the check runs first: no task of any other role started
    tasks = [line for line in run.stdout.splitlines() if line.startswith("TASK [")]
    assert tasks and all("parties : " in task for task in tasks), tasks


def _parties_check(inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """roles/parties alone, as every entry playbook's first play runs it."""
    argv = [str(BIN / "ansible"), "-i", str(inventory), "localhost", "-m", "ansible.builtin.include_role"]
    argv += ["-a", "name=parties", "-e", '{"parties_needed": ["controller", "td_host", "td", "verifier"]}']
    return subprocess.run([*argv, *extra], capture_output=True, text=True, env=_env(), cwd=ROOT, check=False)


def test_the_rendered_inventory_and_the_lab_pass_the_parties_check(rendered: tuple[Path, Path]) -> None:
    folder, password = rendered
    run = _parties_check(folder, "--vault-password-file", str(password))
    assert run.returncode == 0, run.stdout[-2000:]
    assert "SIMULATED" not in run.stdout
    lab = _parties_check(ROOT / "inventories" / "lab")
    assert lab.returncode == 0, lab.stdout[-2000:]
    assert "The TD host (kit-td-host) is a container of its own" in " ".join(lab.stdout.split())
