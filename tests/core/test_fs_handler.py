"""omerofs.fs.handler: which exceptions become which errno, and how loudly."""

from __future__ import annotations

import errno
import logging
from typing import Any

import pyfuse3
import pytest
import trio

from omerofs.fs import handler
from omerofs.namespace import Unknown


class _Ops:
    call_timeout = 1.0

    def __init__(self, error: Exception):
        self.error = error

    @handler
    async def getattr(self, inode: int, ctx: Any = None) -> None:
        raise self.error


def _errno_of(error: Exception) -> int:
    with pytest.raises(pyfuse3.FUSEError) as e:
        trio.run(_Ops(error).getattr, 5)
    return e.value.errno


def test_an_unknown_inode_is_enoent_with_a_warning(caplog):
    with caplog.at_level(logging.DEBUG, logger="omerofs.fs"):
        assert _errno_of(Unknown("inode 5")) == errno.ENOENT
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_any_other_key_error_is_a_bug_logged_at_error(caplog):
    """A KeyError the core did not mean (a missing dict entry) surfaces: an
    ERROR line with its traceback, which the mount tests' log check fails."""
    with caplog.at_level(logging.DEBUG, logger="omerofs.fs"):
        assert _errno_of(KeyError("well_id")) == errno.EIO
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
