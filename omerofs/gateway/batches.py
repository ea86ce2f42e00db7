"""Optional gateway capabilities that fetch more than one plane per server call.

A gateway that has one of these may be asked for it; callers check with
``isinstance`` and fall back to :meth:`Gateway.read_plane` otherwise (the
in-memory gateway has none: nothing to save without a network).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .types import ImageInfo


@runtime_checkable
class TimepointReader(Protocol):
    """Every plane of one timepoint in one server call."""

    def timepoint_bytes(self, image: ImageInfo) -> int:
        """The bytes one :meth:`read_timepoint` answer carries (all z and c
        planes); 0 when this gateway does not read ``image`` by timepoints
        (too big for one message)."""

    def read_timepoint(self, image: ImageInfo, t: int) -> list[memoryview]:
        """The ``size_z * size_c`` planes of timepoint ``t``, z fastest then c
        (index ``z + size_z * c``), each big-endian and exactly
        ``image.plane_bytes`` long: what :meth:`Gateway.read_plane` returns for
        each, as read-only views of one ``bytes`` (the server's answer,
        uncopied: each view keeps all of it alive, which the plane cache
        counts, :class:`omerofs.cache.PlaneCache`). ValueError for ``t``
        outside the image or an image whose ``timepoint_bytes`` is 0."""
