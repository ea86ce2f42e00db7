"""One settings table (omerofs.config.KEYS): the command line, MountConfig and
the core's defaults are built from it, so none can drift from it.

(test_ops_config.py checks the table's documented values written out by hand;
this file checks that everything else agrees with the table.)"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from omerofs import cli
from omerofs.config import KEYS, default, defaults
from omerofs.gateway import ConnectionConfig
from omerofs.gateway.memory import MemoryGateway
from omerofs.listing import MAX_LISTED, Timeouts, listed_nodes_for
from omerofs.mount import MountConfig
from omerofs.namespace import Namespace
from omerofs.retry import RetryPolicy

CONN = ConnectionConfig(host="h")
#: keys that go into the connection (resolved by the CLI) or are the mount's arguments
CONNECTION_KEYS = {"server", "user", "password_file", "session_store", "group", "mountpoint"}
#: MountConfig fields that are no key's value as it is, and the keys they come from
DERIVED = {"connection": None, "mountpoint": "mountpoint", "cache_bytes": "cache_mb",
           "timeouts": ("root_ttl", "plate_ttl"), "call_timeout": "timeout",
           "max_file_bytes": "max_file_mb", "unmount_grace": None}


def mount_options() -> dict[str, argparse.Action]:
    _, m = cli._parser()
    return {a.dest: a for a in m._actions if a.dest in KEYS}


def test_every_key_is_a_mount_option_with_its_type_and_shown_default():
    opts = mount_options()
    assert set(opts) == set(KEYS) - {"server", "mountpoint"}  # those two are positional
    for name, action in opts.items():
        key = KEYS[name]
        assert key.option in action.option_strings
        assert action.default is None  # "not given": a config file may supply it
        if key.kind is bool:
            assert isinstance(action, argparse.BooleanOptionalAction)
        else:
            assert action.type is key.kind
            assert f"(default: {key.shown_default})" in (action.help or "")


def test_mount_config_defaults_are_the_table_s():
    cfg = MountConfig(connection=CONN, mountpoint=Path("/m"))
    fields = {f.name for f in dataclasses.fields(MountConfig)}
    assert fields - set(KEYS) == set(DERIVED) - {"mountpoint"}
    for name in fields & set(KEYS) - {"mountpoint"}:
        assert getattr(cfg, name) == KEYS[name].default, name
    assert cfg.cache_bytes == KEYS["cache_mb"].default << 20
    assert cfg.max_file_bytes == KEYS["max_file_mb"].default << 20
    assert (cfg.timeouts.root_ttl, cfg.timeouts.plate_ttl) == (
        KEYS["root_ttl"].default, KEYS["plate_ttl"].default)
    assert cfg.call_timeout == max(2 * KEYS["timeout"].default, 30.0)
    # and the CLI's path from the merged defaults gives the very same config
    assert MountConfig.from_settings(CONN, {**defaults(), "mountpoint": "/m"}) == cfg


@pytest.mark.parametrize("name", sorted(set(KEYS) - CONNECTION_KEYS))
def test_every_mount_key_reaches_the_mount_config(name):
    """A key left out of the mapping would be parsed and then ignored."""
    key = KEYS[name]
    value = {bool: lambda d: not d, int: lambda d: (d or 0) + 7, float: lambda d: d + 7.5,
             Path: lambda d: Path("/elsewhere"), str: lambda d: "x"}[key.kind](key.default)
    base = {**defaults(), "mountpoint": "/m"}
    assert MountConfig.from_settings(CONN, {**base, name: value}) != \
        MountConfig.from_settings(CONN, base)


def test_the_retry_policy_comes_from_the_table():
    p = MountConfig(connection=CONN, mountpoint=Path("/m")).retry_policy()
    assert p == RetryPolicy(first=KEYS["retry_interval"].default,
                            cap=KEYS["retry_max_interval"].default, give_up_after=None)
    odd = MountConfig(connection=CONN, mountpoint=Path("/m"), retry_interval=600.0,
                      retry_give_up=4).retry_policy()
    assert (odd.first, odd.cap, odd.give_up_after) == (600.0, 600.0, 4)  # cap >= first


def test_the_core_s_defaults_are_the_table_s():
    """Namespace once said prefetch 4 where every mount used 8 (the table's)."""
    ns = Namespace.build(MemoryGateway(), 16 << 20)
    try:
        assert ns.planes.prefetch_depth == default("prefetch") == 8
        # the table's 0: as many as half the budget holds (issue 24)
        assert MAX_LISTED == default("max_listed") == 0
        assert ns.listings.max_listed == listed_nodes_for(16 << 20)
        assert ns.text.max_file_bytes == default("max_file_mb") << 20
        assert (Timeouts().root_ttl, Timeouts().plate_ttl) == (default("root_ttl"),
                                                               default("plate_ttl"))
    finally:
        ns.close()


def test_the_gateway_s_connection_defaults_are_the_table_s():
    """The gateway sits below config.py (imports flow down to it), so it
    keeps its own two defaults: this holds them to the table."""
    assert (CONN.group, CONN.timeout) == (default("group"), default("timeout"))
