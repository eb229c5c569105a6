"""The lab's SIMULATED provider as the controller runs it (module tdx_sim_provider): its key never in the
TD host's run folder, one provider per launch spec, nothing of it left in the run folder after a stop."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import td_launch as th
from test_sim import _fake_kernel


@pytest.mark.slow
def test_the_provider_starts_once_restarts_on_a_new_launch_and_stops_clean(tmp_path: Path) -> None:
    """The controller's provider (tdx_sim_provider): started once per spec, its PKI outside the run folder."""
    root = Path(__file__).resolve().parents[3]
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(_fake_kernel())
    (tmp_path / "initrd.img").write_bytes(b"initrd")
    p = th.ProviderSpec(
        state_dir=str(tmp_path / "controller" / "tdx-sim"),
        run_dir=str(tmp_path / "td-host"),
        kernel=str(kernel),
        initrd=str(tmp_path / "initrd.img"),
        cmdline="console=ttyS0",
        kit_root=str(root),
    )
    try:
        assert th.provider_start(p, sys.executable) is True
        st = th.provider_status(p)
        assert st["running"] and st["matches_spec"] and st["simulated"]
        assert Path(st["collateral"]).is_file() and Path(st["root"]).is_file()
        assert str(tmp_path / "td-host") not in st["collateral"]
        assert th.provider_start(p, sys.executable) is False
        first_token = th.provider_token(Path(p.run_dir)).read_bytes()
        changed = dataclasses.replace(p, cmdline="console=ttyS0 kit.e2e=changed")
        assert th.provider_status(changed)["matches_spec"] is False
        assert th.provider_start(changed, sys.executable) is True
        assert th.provider_token(Path(p.run_dir)).read_bytes() != first_token
    finally:
        assert th.provider_stop(p) is True
    assert not th.provider_socket(Path(p.run_dir)).exists()
    assert not th.provider_token(Path(p.run_dir)).exists()
    assert (Path(p.state_dir) / "root.der").exists()
    assert th.provider_stop(p) is False
