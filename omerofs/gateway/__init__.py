"""The gateway: everything omerofs asks of an OMERO server.

:mod:`.protocol` defines the interface, :mod:`.types` and :mod:`.errors` what
crosses it, :mod:`.queries` the HQL contract. :mod:`.omero` is the omero-py
implementation and is imported only on demand (it pulls in Ice), via
:func:`open_gateway`.
"""

from __future__ import annotations

from .config import ConnectionConfig, parse_server
from .errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServerUnavailable,
)
from .protocol import Gateway
from .types import (
    FileAnnotationInfo,
    ImageInfo,
    PlaneIndex,
    PlateStructure,
    PlateSummary,
    Target,
    TargetKind,
    WellInfo,
    WellSampleInfo,
)


def open_gateway(config: ConnectionConfig) -> Gateway:
    """An unconnected omero-py gateway for ``config`` (connects on first use)."""
    from .omero import OmeroGateway

    return OmeroGateway(config)


__all__ = [
    "AuthenticationFailed",
    "ConnectionConfig",
    "FileAnnotationInfo",
    "Gateway",
    "GatewayError",
    "ImageInfo",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "PlaneIndex",
    "PlateStructure",
    "PlateSummary",
    "ServerUnavailable",
    "Target",
    "TargetKind",
    "WellInfo",
    "WellSampleInfo",
    "open_gateway",
    "parse_server",
]
