"""Molecule `default`: the client side (Keylime verifier, registrar, tenant) in a systemd container."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

CONTAINER = "kit-verifier-default"
testinfra_hosts = [f"podman://{CONTAINER}"]

CA_DIR = "/var/lib/keylime/cv_ca"
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
SERVICES = ["keylime_verifier", "keylime_registrar"]


def curl(host, port: int, path: str, client_cert: bool) -> str:
    """HTTPS GET that checks the server certificate against the kit's CA (CN 'server')."""
    args = f"--resolve server:{port}:127.0.0.1 --cacert {CA_DIR}/cacert.crt"
    if client_cert:
        args += f" --cert {CA_DIR}/client-cert.crt --key {CA_DIR}/client-private.pem"
    return host.check_output(f"curl -sS {args} https://server:{port}{path}")


@pytest.mark.parametrize("service", SERVICES)
def test_service_runs_under_systemd_as_keylime(host, service: str) -> None:
    svc = host.service(service)
    assert svc.is_running
    assert svc.is_enabled
    main_pid = host.check_output(f"systemctl show -p MainPID --value {service}")
    assert host.check_output(f"ps -o user= -p {main_pid}").strip() == "keylime"
    # every process of the service (main and workers; comm is cut to 15 characters)
    users = host.check_output(f"ps -C {service[:15]} -o user=")
    assert len(users.split()) >= 2
    assert set(users.split()) == {"keylime"}


@pytest.mark.parametrize(("address", "port"), [("127.0.0.1", 8881), ("127.0.0.1", 8890), ("127.0.0.1", 8891)])
def test_listens_where_configured(host, address: str, port: int) -> None:
    assert host.socket(f"tcp://{address}:{port}").is_listening


@pytest.mark.parametrize(
    ("port", "path", "action"),
    [(8881, "/v2.6/agents/", "list_agents"), (8891, "/v2.6/agents/", "list_registrations")],
)
def test_admin_api_requires_the_client_certificate(host, port: int, path: str, action: str) -> None:
    assert '"uuids"' in curl(host, port, path, client_cert=True)
    refused = curl(host, port, path, client_cert=False)
    assert "403" in refused and action in refused


def test_registrar_tls_port_presents_a_certificate_of_the_kit_ca(host) -> None:
    out = host.check_output(
        f"openssl s_client -connect 127.0.0.1:8891 -CAfile {CA_DIR}/cacert.crt"
        " -verify_return_error </dev/null 2>&1"
    )
    assert "Verify return code: 0 (ok)" in out
    assert "CN = Keylime Certificate Authority" in out


def test_registrar_certificate_fails_against_another_ca(host) -> None:
    """The check above can fail: the same handshake against an unrelated CA is refused."""
    host.check_output(
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=other -keyout /tmp/other.key -out /tmp/other.crt"
        " -days 1 2>/dev/null"
    )
    res = host.run(
        "openssl s_client -connect 127.0.0.1:8891 -CAfile /tmp/other.crt -verify_return_error </dev/null"
    )
    assert res.rc != 0


@pytest.mark.parametrize("command", ["cvlist", "reglist"])
def test_tenant_lists(host, command: str) -> None:
    res = host.run(f"cd /tmp && keylime_tenant -c {command}")
    assert res.rc == 0, res.stderr
    assert '"uuids"' in res.stdout + res.stderr


UNSIGNED_POLICY = (
    '{"meta": {"version": 1, "generator": 0, "timestamp": ""}, "release": 0, "digests": {"/usr/bin/x": ["'
    + "0" * 64
    + '"]}, "excludes": [], "keyrings": {}, "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1",'
    ' "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}'
)


def test_verifier_refuses_an_unsigned_runtime_policy(host) -> None:
    """The verifier requires signed runtime policies (keylime_server_require_policy_signatures): an operator,
    or anyone holding a tenant certificate, cannot install one that the operator's key did not sign."""
    host.check_output(f"printf '%s' '{UNSIGNED_POLICY}' > /tmp/unsigned-policy.json")
    res = host.run(
        "cd /tmp && keylime_tenant -c addruntimepolicy --runtime-policy-name kit-unsigned"
        " --runtime-policy /tmp/unsigned-policy.json"
    )
    # keylime/ima/ima.py verify_runtime_policy: 401 before anything is stored
    assert "signature verification required" in res.stdout + res.stderr, res.stdout + res.stderr


def test_ca_password_is_not_on_disk(host) -> None:
    out = host.run(
        "grep -rl molecule-test-ca-password /etc /var/lib/keylime /opt/keylime /tmp /root 2>/dev/null"
    )
    assert out.stdout.strip() == ""


def test_ca_private_store_is_root_only(host) -> None:
    store = host.file(f"{CA_DIR}/private.yml")
    assert store.user == "root"
    assert store.mode & 0o077 == 0


def test_stopping_the_verifier_leaves_no_keylime_process(host) -> None:
    # "[k]" keeps the pattern from matching the shell that runs pgrep
    assert host.run("pgrep -u keylime -f '[k]eylime_verifier'").rc == 0
    host.check_output("systemctl stop keylime_verifier")
    try:
        assert host.run("pgrep -f '[k]eylime_verifier'").rc == 1
        assert host.check_output("systemctl show -p Result --value keylime_verifier") == "success"
    finally:
        host.check_output("systemctl start keylime_verifier")
    for _unused in range(30):
        if host.socket("tcp://127.0.0.1:8881").is_listening:
            break
        time.sleep(1)
    assert host.socket("tcp://127.0.0.1:8881").is_listening


BAD_VARIABLES = [
    ({"keylime_server_database_backend": "mysql"}, "keylime_server_database_backend"),
    ({"keylime_server_verifier_ip": "300.1.2.3"}, "keylime_server_verifier_ip"),
    ({"keylime_server_registrar_ip": "reg istrar"}, "keylime_server_registrar_ip"),
    ({"keylime_server_ca_password": ""}, "keylime_server_ca_password"),
    ({"keylime_server_verifier_port": 70000}, "keylime_server_verifier_port"),
    ({"keylime_tenant_verifier_ip": "1.2.3"}, "keylime_tenant_verifier_ip"),
]


def client_side(extra: dict[str, object], check: bool) -> subprocess.CompletedProcess[str]:
    """playbooks/client-side.yml against the scenario's container, with extra variables."""
    import json

    inventory = (
        "all:\n  children:\n    verifier:\n      hosts:\n"
        f"        {CONTAINER}:\n          ansible_connection: containers.podman.podman\n"
        "          ansible_python_interpreter: /usr/bin/python3\n"
        "          keylime_server_ca_password: molecule-test-ca-password\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as inv:
        inv.write(inventory)
        inv.flush()
        return subprocess.run(
            [
                "ansible-playbook",
                "-i",
                inv.name,
                str(PROJECT / "playbooks/client-side.yml"),
                "-e",
                json.dumps(extra),
            ]
            + (["--check"] if check else []),
            capture_output=True,
            text=True,
            cwd=PROJECT,
            check=False,
            env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        )


@pytest.mark.parametrize(("extra", "name"), BAD_VARIABLES, ids=[n for _unused, n in BAD_VARIABLES])
def test_bad_variable_fails_validation_naming_it(extra: dict[str, object], name: str) -> None:
    res = client_side(extra, check=True)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert name in out
    # Validation stops the play before the first change: nothing reported as changed.
    assert "changed=0" in out
    if name.startswith("keylime_server_"):
        # the first role stops at its validation: nothing of the installation ran
        assert "keylime_common : Install" not in out


def test_a_port_held_by_another_process_fails_the_role_with_the_reason(host) -> None:
    """The verifier cannot bind its port: the role must fail saying so, not report an active service."""
    port = 18881
    host.check_output(f"systemd-run --unit kit-port-squatter python3 -m http.server {port} --bind 127.0.0.1")
    try:
        for _unused in range(20):
            if host.socket(f"tcp://127.0.0.1:{port}").is_listening:
                break
            time.sleep(0.5)
        res = client_side(
            {
                "keylime_server_verifier_port": port,
                "keylime_tenant_verifier_port": port,
                "keylime_server_start_timeout": 10,
            },
            check=False,
        )
        out = res.stdout + res.stderr
        assert res.returncode != 0
        assert "keylime_verifier" in out and "does not serve its ports" in out
        assert f"port {port} is held by pid" in out
    finally:
        host.run("systemctl stop kit-port-squatter")
        # put the scenario's own configuration back (and show that the role then passes its own check)
        restored = client_side({}, check=False)
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert host.socket("tcp://127.0.0.1:8881").is_listening
