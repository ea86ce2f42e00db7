"""The TOML config file, mount(8) -o options and their precedence, without a server.

Expected values are written out by hand from the documented key table
(docs/configuration.rst), never taken from omerofs.config itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omerofs import cli
from omerofs.config import ConfigError, load, parse_mount_options

FULL = """\
server = "tcp://omero.example.org:4063"
mountpoint = "mnt"
user = "alice"
password_file = "secrets/pw"
session_store = false
group = 3
cache_mb = 512
root_ttl = 5
plate_ttl = 30.5
prefetch = 0
workers = 8
timeout = 20
allow_other = true
uid = 1000
gid = 1000
log_file = "/var/log/omerofs.log"
spool_dir = "~/spool"
max_file_mb = 64
retry_interval = 2.5
retry_max_interval = 120
retry_give_up = 50
site_idle = 3
debug = true
"""


def write(tmp_path: Path, text: str, name: str = "omerofs.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_key_loads_with_its_type(tmp_path):
    got = load(write(tmp_path, FULL))
    assert got == {
        "server": "tcp://omero.example.org:4063",
        "mountpoint": tmp_path / "mnt",                 # relative to the file's directory
        "user": "alice",
        "password_file": tmp_path / "secrets" / "pw",
        "session_store": False, "group": 3, "cache_mb": 512,
        "root_ttl": 5.0, "plate_ttl": 30.5, "prefetch": 0, "workers": 8, "timeout": 20.0,
        "allow_other": True, "uid": 1000, "gid": 1000,
        "log_file": Path("/var/log/omerofs.log"),
        "spool_dir": Path.home() / "spool",
        "max_file_mb": 64, "retry_interval": 2.5, "retry_max_interval": 120.0,
        "retry_give_up": 50, "site_idle": 3.0, "debug": True,
    }
    assert isinstance(got["root_ttl"], float)


@pytest.mark.parametrize("text, message", [
    ("cache_size = 5\n", "unknown key 'cache_size' (did you mean 'cache_mb'?)"),
    ("frobnicate = 1\n", "unknown key 'frobnicate'"),
    ('password = "hunter2"\n', "'password' is refused"),
    ('session_key = "abc"\n', "'session_key' is refused"),
    ("[omerofs]\ncache_mb = 5\n", "unexpected table [omerofs]"),
    ('cache_mb = "big"\n', "cache_mb must be an integer, not 'big'"),
    ("cache_mb = 64.5\n", "cache_mb must be an integer"),
    ("workers = true\n", "workers must be an integer"),
    ('allow_other = "yes"\n', "allow_other must be true or false"),
    ("cache_mb = 8\n", "cache_mb must be at least 16"),
    ("timeout = 0\n", "timeout must be more than 0"),
    ("root_ttl = -1\n", "root_ttl must be at least 0"),
    ("plate_ttl = inf\n", "plate_ttl must be a finite number"),
    ('server = ""\n', "server must not be empty"),
    ("cache_mb = \n", "invalid TOML"),
])
def test_bad_files_are_refused_naming_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert str(e.value).startswith(f"config {path}: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert "hunter2" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="No such file or directory"):
        load(tmp_path / "absent.toml")


def settings(argv: list[str], env_user: str | None = None) -> dict:
    """What `omerofs mount ARGV` would mount with, credentials left out."""
    _, m = cli._parser()
    args = m.parse_intermixed_args(argv)
    old = os.environ.pop("OMERO_USER", None)
    try:
        if env_user:
            os.environ["OMERO_USER"] = env_user
        targets = args.targets
        given = ({"server": targets[0], "mountpoint": targets[1]} if len(targets) == 2
                 else {"mountpoint": targets[0]} if targets else {})
        return cli._settings(args, **given)
    finally:
        os.environ.pop("OMERO_USER", None)
        if old is not None:
            os.environ["OMERO_USER"] = old


def test_precedence_command_line_over_file_over_defaults(tmp_path):
    cfg = write(tmp_path, 'server = "tcp://a:1"\nmountpoint = "/m1"\nuser = "filer"\n'
                          "cache_mb = 100\nallow_other = true\ndebug = true\n")
    # nothing on the command line: the file, then the defaults
    s = settings(["--config", str(cfg)], env_user="envuser")
    assert (s["server"], s["mountpoint"], s["user"]) == ("tcp://a:1", Path("/m1"), "filer")
    assert (s["cache_mb"], s["allow_other"], s["debug"]) == (100, True, True)
    assert (s["prefetch"], s["workers"], s["plate_ttl"]) == (8, 16, 60.0)
    assert (s["retry_interval"], s["retry_max_interval"], s["retry_give_up"]) == (5.0, 300.0, 0)
    # the command line wins, including --no-... over a true in the file
    s = settings(["tcp://b:2", "--cache-mb", "200", "/m2", "--config", str(cfg),
                  "--no-allow-other", "-u", "cli"], env_user="envuser")
    assert (s["server"], s["mountpoint"], s["user"]) == ("tcp://b:2", "/m2", "cli")
    assert (s["cache_mb"], s["allow_other"], s["debug"]) == (200, False, True)
    # one positional is the mount point; the server stays the file's
    s = settings(["/m3", "--config", str(cfg)])
    assert (s["server"], s["mountpoint"]) == ("tcp://a:1", "/m3")
    # $OMERO_USER only when neither the command line nor the file names a user
    assert settings(["x", "/m"], env_user="envuser")["user"] == "envuser"
    assert settings(["--config", str(cfg)], env_user="envuser")["user"] == "filer"


def test_mount_options_map_to_keys_and_ignore_mount_generics():
    o = parse_mount_options("_netdev,nofail,defaults,rw,noauto,user,users,x-systemd.automount,"
                            "x-systemd.mount-timeout=30,comment=x,nosuid,nodev,config=/etc/o.toml,"
                            "cache_mb=512,cache-mb=256,allow_other,uid=1000,gid=100,root_ttl=2.5,"
                            "debug=false,group=7,group")
    assert o.config == Path("/etc/o.toml")
    assert o.settings == {"cache_mb": 256, "allow_other": True, "uid": 1000, "gid": 100,
                          "root_ttl": 2.5, "debug": False, "group": 7}
    assert set(o.ignored) == {"_netdev", "nofail", "defaults", "rw", "noauto", "user", "users",
                              "x-systemd.automount", "x-systemd.mount-timeout=30", "comment=x",
                              "nosuid", "nodev", "group"}


@pytest.mark.parametrize("text, message", [
    ("bogus", "unknown mount option 'bogus'"),
    ("ro", "unknown mount option 'ro'"),
    ("password=hunter2", "'password' is refused"),
    ("cache_mb=lots", "cache_mb must be an integer, not 'lots'"),
    ("cache_mb", "cache_mb needs a value"),
    ("cache_mb=4", "cache_mb must be at least 16"),
    ("allow_other=maybe", "allow_other takes true or false"),
    ("server=tcp://x:1", "unknown mount option 'server'"),
    ("config=", "config needs a file"),
])
def test_bad_mount_options(text, message):
    with pytest.raises(ConfigError) as e:
        parse_mount_options(text)
    assert message in str(e.value) and "hunter2" not in str(e.value)


def test_sloppy_ignores_unknown_options():
    o = parse_mount_options("bogus,cache_mb=64", sloppy=True)
    assert o.settings == {"cache_mb": 64} and o.ignored == ("bogus",)


def test_helper_argv_as_mount_passes_it(tmp_path):
    cfg = write(tmp_path, 'server = "tcp://file:1"\nuser = "u"\ncache_mb = 100\nprefetch = 2\n')
    source, mnt, s, flags = cli.parse_helper_argv(
        ["tcp://src:4063", "/omero", "-n", "-o", f"_netdev,nofail,config={cfg},cache_mb=300",
         "-v"])
    assert (source, mnt) == ("tcp://src:4063", "/omero")
    assert s["server"] == "tcp://src:4063"            # the fstab source wins over the file
    assert s["mountpoint"] == Path("/omero")
    assert (s["cache_mb"], s["prefetch"], s["user"]) == (300, 2, "u")
    assert flags == {"fake": False, "sloppy": False, "verbose": True}
    # "omerofs" as the source: the server comes from the file; option letters combine
    _, _, s, flags = cli.parse_helper_argv(["omerofs", "/omero", "-sfv", f"-oconfig={cfg},zz"])
    assert s["server"] == "tcp://file:1"
    assert flags == {"fake": True, "sloppy": True, "verbose": True}
    for bad in (["only-one"], ["a", "b", "c"], ["a", "b", "-q"]):
        with pytest.raises(ConfigError):
            cli.parse_helper_argv(bad)




def test_config_errors_exit_non_zero_in_one_line(tmp_path, run_cli):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    pw = tmp_path / "pw"
    pw.write_text("sekrit-pw\n")
    pw.chmod(0o644)
    cases = [
        ("cache_mb = 5\nserver = 'x'\n", [str(mnt)], 2, "cache_mb must be at least 16"),
        ("cachemb = 64\n", [str(mnt)], 2, "unknown key 'cachemb' (did you mean 'cache_mb'?)"),
        ("password = 'sekrit-pw'\n", [str(mnt)], 2, "'password' is refused"),
        ("user = 'root'\n", [str(mnt)], 2, "no server: give SERVER or set server"),
        ("server = 'tcp://127.0.0.1:1'\nuser = 'root'\n", [], 2, "no mount point"),
        (f"server = 'tcp://127.0.0.1:1'\nuser = 'root'\npassword_file = '{pw}'\n", [str(mnt)],
         2, "readable by group or others"),
        ("user = 'root'\n", ["a", "b", "c"], 2, "too many arguments: c"),
        ("", ["tcp://127.0.0.1:1", str(mnt), "--cache-mb", "3"], 2,
         "option --cache-mb: cache_mb must be at least 16"),
    ]
    for text, extra, code, message in cases:
        cfg = write(tmp_path, text)
        r = run_cli("mount", "--config", str(cfg), *extra)
        assert r.returncode == code and message in r.stderr, (text, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("omerofs: "), r.stderr
        assert "sekrit-pw" not in r.stderr
    r = run_cli("mount", "--config", str(tmp_path / "nope.toml"), str(mnt))
    assert r.returncode == 2 and "nope.toml: No such file or directory" in r.stderr
    r = run_cli("mount-helper", "tcp://127.0.0.1:1", str(mnt), "-o", "frob")
    assert r.returncode == 1 and r.stderr.strip() == (
        "omerofs: unknown mount option 'frob' (omerofs takes config=FILE and the keys of "
        "its config file, e.g. cache_mb=512)")


def test_umount_takes_the_mount_point_from_the_config(tmp_path, run_cli):
    cfg = write(tmp_path, f"mountpoint = '{tmp_path}'\n")
    r = run_cli("umount", "--config", str(cfg))
    assert r.returncode == 1 and r.stderr.strip() == f"omerofs: {tmp_path} is not mounted"
    r = run_cli("umount", "--stale", "--config", str(cfg))  # nothing stale: nothing to do
    assert r.returncode == 0 and r.stderr == ""
    r = run_cli("umount")
    assert r.returncode == 2 and "no mount point" in r.stderr
