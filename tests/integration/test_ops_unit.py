"""config/intake.service is a unit systemd accepts (systemd-analyze verify, with the
ExecStart pointed at this venv's `intake`) and keeps the operational promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "config" / "intake.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit_file(tmp_path):
    """systemd-analyze verify reports nothing once ExecStart names an existing executable."""
    intake = Path(sys.executable).parent / "intake"
    assert intake.exists()
    unit = tmp_path / "intake.service"
    unit.write_text(UNIT.read_text().replace("/opt/intake/.venv/bin/intake", str(intake)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_unit_runs_the_daemon_with_its_config_restarts_on_failure_and_is_hardened():
    """Type=simple, --config, SIGTERM with a stop timeout, restart on failure, an unprivileged
    user, and a read-only system except the state directory."""
    keys = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            keys[key.strip()] = value.strip()
    assert keys["Type"] == "simple" and keys["User"] == "intake"
    assert "--config /etc/intake/intake.toml run" in keys["ExecStart"]
    assert keys["KillSignal"] == "SIGTERM" and int(keys["TimeoutStopSec"]) >= 35  # workers get 30 s each
    assert keys["Restart"] == "on-failure"
    assert keys["NoNewPrivileges"] == "yes" and keys["ProtectSystem"] == "strict"
    assert keys["ReadWritePaths"] == "/var/lib/intake" and keys["WorkingDirectory"] == "/var/lib/intake"
