"""The deployment files: docker-compose.yml and .env.example, the systemd units,
the mount(8) helper script. No Docker engine or systemd instance is needed:
structure is checked here, behaviour in test_ops_mount.py."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def compose() -> dict:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def test_compose_runs_omero_server_postgres_and_web_on_pinned_images():
    services = compose()["services"]
    images = {name: s["image"] for name, s in services.items()}
    # the tags OME's own compose files and image builds use (cited in the file):
    # a major (or major.minor) tag that OME's release workflow pushes, never a
    # guessed patch number
    assert images == {"database": "postgres:16",
                      "omeroserver": "openmicroscopy/omero-server:5.6",
                      "omeroweb": "openmicroscopy/omero-web-standalone:5"}
    for image in images.values():
        assert ":" in image and not image.endswith(":latest")
    # each image says where its tag comes from, in the comment just above it
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("image:"):
            comment = []
            for above in reversed(lines[:i]):
                if not above.strip().startswith("#"):
                    break
                comment.append(above)
            assert any("ome/" in c for c in comment), f"no source cited for {line.strip()}"
    ports = {name: [str(p) for p in s.get("ports", [])] for name, s in services.items()}
    assert ports["omeroserver"] == ["${OMERO_TCP_PORT:-4063}:4063",
                                    "${OMERO_SSL_PORT:-4064}:4064"]
    assert ports["omeroweb"] == ["${OMERO_WEB_PORT:-4080}:4080"]
    assert services["omeroserver"]["environment"]["CONFIG_omero_db_host"] == "database"
    assert services["omeroweb"]["environment"]["OMEROHOST"] == "omeroserver"
    assert services["omeroserver"]["depends_on"]["database"]["condition"] == "service_healthy"


def test_compose_volumes_are_named_and_declared():
    doc = compose()
    declared = set(doc["volumes"])
    used = {v.split(":")[0] for s in doc["services"].values() for v in s.get("volumes", [])}
    assert used == declared == {"database", "omero"}
    assert not any(v.startswith(("/", ".")) for v in used)  # no bind mounts


def test_compose_secrets_come_from_the_env_file():
    doc = compose()
    secrets = {"POSTGRES_PASSWORD", "CONFIG_omero_db_pass", "ROOTPASS"}
    found = set()
    for s in doc["services"].values():
        for k, v in (s.get("environment") or {}).items():
            if k in secrets:
                found.add(k)
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(v)), (k, v)  # required
    assert found == secrets
    used = set(VAR.findall((ROOT / "docker-compose.yml").read_text()))
    example = env_example()
    assert used == set(example), "every variable of the compose file is in .env.example"
    assert all(v.startswith("change-me") for k, v in example.items() if "PASSWORD" in k)


def unit(name: str) -> configparser.ConfigParser:
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str  # type: ignore[assignment,method-assign]
    p.read_string((ROOT / "systemd" / name).read_text())
    return p


def test_service_unit_is_a_notify_template_without_secrets():
    u = unit("omerofs@.service")
    assert u["Unit"]["Wants"] == u["Unit"]["After"] == "network-online.target"
    s = u["Service"]
    assert s["Type"] == "notify" and s["Restart"] == "on-failure"
    assert s["ExecStart"].endswith("omerofs mount -f --config /etc/omerofs/%i.toml")
    assert s["ExecStop"].endswith("omerofs umount --config /etc/omerofs/%i.toml")
    assert "umount --stale" in s["ExecStartPre"]
    assert u["Install"]["WantedBy"] == "multi-user.target"
    text = (ROOT / "systemd" / "omerofs@.service").read_text()
    assert not re.search(r"(?im)^\s*Environment=.*PASSWORD", text)
    assert "OMERO_PASSWORD" not in text and "--password" not in text


def test_mount_unit_matches_the_fstab_line():
    u = unit("omero.mount")
    m = u["Mount"]
    assert m["Where"] == "/omero"  # the unit's name is the escaped mount point
    assert m["Type"] == "fuse.omerofs"
    assert "config=/etc/omerofs/" in m["Options"] and "_netdev" in m["Options"]
    assert u["Unit"]["After"] == "network-online.target"


def test_units_pass_systemd_analyze_verify(tmp_path):
    """systemd's own checker, with the paths pointed at this venv's omerofs."""
    tool = shutil.which("systemd-analyze")
    exe = Path(sys.executable).parent / "omerofs"
    texts = {"omerofs@lab.service": (ROOT / "systemd" / "omerofs@.service").read_text(),
             "omero.mount": (ROOT / "systemd" / "omero.mount").read_text()}
    for name, text in texts.items():
        assert "/usr/local/bin/omerofs" in text or name.endswith(".mount")
        (tmp_path / name).write_text(text.replace("/usr/local/bin/omerofs", str(exe)))
    if tool is None:  # no systemd here: the structural checks above are what remains
        return
    r = subprocess.run([tool, "verify", *(str(tmp_path / n) for n in texts)],
                       capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if "omerofs" in line or "omero.mount" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_mount_helper_script_is_executable_posix_sh():
    script = ROOT / "scripts" / "mount.omerofs"
    assert os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/bin/sh\n")
    r = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # bad usage reaches omerofs and comes back as mount(8)'s usage error
    r = subprocess.run([str(script), "only-a-source"], capture_output=True, text=True,
                       env={**os.environ, "OMEROFS_PYTHON": sys.executable}, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("omerofs: usage: mount.omerofs SOURCE")
