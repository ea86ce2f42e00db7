"""The gateway: everything omerofs asks of an OMERO server.

:mod:`.protocol` defines the interface, :mod:`.types` and :mod:`.errors` what
crosses it, :mod:`.queries` the HQL contract. :mod:`.omero` is the omero-py
implementation, imported only where it is needed (it pulls in Ice);
:mod:`.memory` is an in-memory one for tests of the layers above, held to
the same contract (``tests/gateway_contract.py``).
"""

from __future__ import annotations

from .config import ConnectionConfig, parse_server
from .errors import (
    AuthenticationFailed,
    CallTimedOut,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServerUnavailable,
    SessionLost,
    TryLater,
)
from .protocol import Gateway
from .types import (
    AccountInfo,
    ChannelRendering,
    FileAnnotationInfo,
    Fingerprint,
    ImageInfo,
    ImageRendering,
    PlaneIndex,
    PlateFiles,
    PlateFingerprint,
    PlateRendering,
    PlateStructure,
    PlateSummary,
    Target,
    TargetKind,
    WellInfo,
    WellSampleInfo,
)

__all__ = [
    "AccountInfo",
    "AuthenticationFailed",
    "CallTimedOut",
    "ChannelRendering",
    "ConnectionConfig",
    "FileAnnotationInfo",
    "Fingerprint",
    "Gateway",
    "GatewayError",
    "ImageInfo",
    "ImageRendering",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "PlaneIndex",
    "PlateFiles",
    "PlateFingerprint",
    "PlateRendering",
    "PlateStructure",
    "PlateSummary",
    "ServerUnavailable",
    "SessionLost",
    "Target",
    "TargetKind",
    "TryLater",
    "WellInfo",
    "WellSampleInfo",
    "parse_server",
]
