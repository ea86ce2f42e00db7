"""A real OMERO.server named by the environment (``OMERO_HOST``, ``OMERO_PORT``,
``OMERO_USER``, ``OMERO_PASSWORD``; docs/deployment.rst): the ``real`` mark
that skips a test without one (the only skip this suite allows), and its
connection settings."""

from __future__ import annotations

import os

import pytest

from omerofs.gateway import ConnectionConfig, parse_server

HOST = os.environ.get("OMERO_HOST")
real = pytest.mark.skipif(not HOST, reason="no real OMERO.server: set OMERO_HOST, OMERO_PORT, "
                                           "OMERO_USER, OMERO_PASSWORD (docs/deployment.rst)")


def real_connection(group: int = -1) -> ConnectionConfig:
    assert HOST
    addr = parse_server(HOST)
    return ConnectionConfig(host=addr.host, port=int(os.environ.get("OMERO_PORT") or addr.port),
                            secure=addr.secure, websocket=addr.websocket, path=addr.path,
                            user=os.environ.get("OMERO_USER"),
                            password=os.environ.get("OMERO_PASSWORD"), timeout=30.0,
                            group=group)
