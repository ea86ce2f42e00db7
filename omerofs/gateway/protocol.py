"""The typed interface between the filesystem and an OMERO server.

Contract for every implementation:

* Calls are blocking and thread-safe: the filesystem calls them from worker
  threads (``trio.to_thread.run_sync``) and may run several at once; a call
  waits for no other call of the same gateway (a slow read of one plane
  holds up no read of another).
* A call that starts after another returned (in any thread) sees its effect:
  a listing asked after an upload returned shows the file.
* Only :mod:`omerofs.gateway.errors` exceptions escape, besides ``ValueError``
  for arguments that are wrong before any server is asked.
* Pixel bytes are returned exactly as OMERO sends them: big-endian, row-major,
  ``size_x * size_y * itemsize`` bytes for a plane.
* Listing a plate (:meth:`Gateway.load_plate`) costs O(1) server calls, whatever
  the number of wells and fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from .types import (
    AccountInfo,
    FileAnnotationInfo,
    ImageInfo,
    PlaneIndex,
    PlateFiles,
    PlateFingerprint,
    PlateRendering,
    PlateStructure,
    PlateSummary,
    Target,
)


@runtime_checkable
class Gateway(Protocol):
    # --- session -----------------------------------------------------------
    def connect(self) -> None:
        """Log in (or join the configured session). Raises AuthenticationFailed
        or ServerUnavailable. Idempotent."""

    def close(self) -> None:
        """Release stores and the session's connection. Idempotent."""

    def session_key(self) -> str:
        """The uuid of the current server session (connects if needed)."""

    @property
    def connected(self) -> bool:
        """True while a session is held (no server call to find out)."""

    def account(self) -> AccountInfo:
        """Who the session is: its user, whether an administrator (who lists
        every group's plates), its groups. Asks the server once per session."""

    @property
    def known_account(self) -> AccountInfo | None:
        """:meth:`account` if it was asked for already, else None (no server call)."""

    @property
    def calls(self) -> Mapping[str, int]:
        """Remote calls made so far, per operation (the mount's status shows these)."""

    @property
    def errors(self) -> Mapping[str, int]:
        """Failed remote calls so far, per operation."""

    # --- read: plates and pixels ------------------------------------------------
    def list_plates(self) -> list[PlateSummary]:
        """Every Plate the user can read, across all groups, ordered by id."""

    def get_plate(self, plate_id: int) -> PlateSummary:
        """One Plate; NotFound if it does not exist or is not readable."""

    def load_plate(self, plate_id: int, plate: PlateSummary | None = None) -> PlateStructure:
        """The plate's wells, fields and image sizes, in O(1) server calls: one
        when the caller passes the plate's summary, two otherwise. Its
        ``fingerprint`` is the layout's, read with the wells (same snapshot)."""

    def plate_fingerprint(self, plate_id: int, rendering: bool = False) -> PlateFingerprint:
        """One server call: the plate's row and the fingerprints its layout and
        its files would load with now, and with ``rendering`` the one of
        :meth:`plate_rendering`. Equal fingerprints (``key()``) mean
        an equal listing: every change a listing shows changes one of them
        (docs/performance.rst says what each covers). NotFound if the plate
        does not exist or is not readable."""

    def plate_rendering(self, plate_id: int) -> PlateRendering:
        """One server call: the rendering settings of the plate's images that
        OMERO's rendering engine would give this session's user, per image
        (an image with none is absent): the user's own settings updated
        last, else those of the image's owner updated last (omero-server
        IPixels.retrieveRndSettings; queries.py, "rendering settings");
        with the fingerprint of what they were read from. An unreadable or
        missing plate has none (no NotFound: the layout's load says that)."""

    def read_plane(self, image: ImageInfo, plane: PlaneIndex) -> bytes:
        """One whole plane, big-endian, exactly ``image.plane_bytes`` long. Planes
        larger than one server message are fetched in row bands and joined.
        At ``image.level`` (an :meth:`ImageInfo.at_level` of the levels
        :meth:`resolution_levels` gave): that level's plane, as the server
        sends it."""

    def read_tile(
        self, image: ImageInfo, plane: PlaneIndex, x: int, y: int, width: int, height: int
    ) -> bytes:
        """A rectangle of a plane (at ``image.level``, in that level's
        pixels), big-endian, row-major. ValueError for a rectangle outside."""

    def resolution_levels(self, image: ImageInfo) -> tuple[tuple[int, int], ...]:
        """(size_x, size_y) of each resolution level of the image (given at
        full resolution), full resolution first, each next one no larger:
        the pyramid OMERO keeps of a big image, or the one level of any
        other. One server call (``getResolutionDescriptions``); pixels are
        write-once, so the answer never changes. ``image.at_level(k,
        levels)`` then reads level ``k``."""

    # --- server settings ----------------------------------------------------------
    def max_plane(self) -> tuple[int, int]:
        """The server's pyramid threshold, (``omero.pixeldata.max_plane_width``,
        ``max_plane_height``): an image whose planes have more pixels than
        their product (float and double excepted) cannot be written plane by
        plane (:func:`omerofs.gateway.types.whole_plane_writable`). Asked of
        the server once per session; OMERO's default 3192 x 3192 when it
        gives none."""

    # --- read/write: file annotations ----------------------------------------
    def list_file_annotations(self, plate_id: int) -> list[FileAnnotationInfo]:
        """FileAnnotations linked to the plate, its wells and its wells' images,
        in O(1) server calls."""

    def plate_files(self, plate_id: int) -> PlateFiles:
        """The same annotations (one server call) with the fingerprint of the
        links, annotations and files they were read from (same snapshot)."""

    def read_file(self, file_id: int) -> bytes:
        """The whole content of an OriginalFile."""

    def create_file_annotation(
        self,
        target: Target,
        name: str,
        data: bytes,
        *,
        path: str = "",
        mimetype: str | None = None,
        ns: str = "omerofs",
    ) -> FileAnnotationInfo:
        """Upload ``data`` as a new OriginalFile, wrapped in a FileAnnotation
        linked to ``target``."""

    def replace_file(self, annotation: FileAnnotationInfo, data: bytes) -> FileAnnotationInfo:
        """Replace the content of an annotation's file in place (same ids)."""

    def rename_file(
        self, annotation: FileAnnotationInfo, name: str, path: str
    ) -> FileAnnotationInfo:
        """Change the name and path of an annotation's OriginalFile (same ids)."""

    def delete_file_annotation(self, annotation_id: int) -> None:
        """Delete the annotation, its links and its OriginalFile."""

    # --- write: derived plates ---------------------------------------------------
    def create_plate(
        self, name: str, rows: int | None = None, columns: int | None = None
    ) -> PlateSummary:
        """A new, empty Plate, marked as made by omerofs (``derived``), in the
        group :meth:`AccountInfo.new_plate_group` chooses; PermissionDenied
        when there is none (docs/semantics.rst)."""

    def create_well(self, plate_id: int, row: int, column: int) -> int:
        """A new Well on a plate; returns its id."""

    def create_image(
        self,
        well_id: int,
        name: str,
        size_x: int,
        size_y: int,
        size_z: int,
        size_c: int,
        size_t: int,
        pixel_type: str,
        planes: Mapping[PlaneIndex, bytes],
    ) -> ImageInfo:
        """A new Image holding real data, added as a field of ``well_id``.

        ``planes`` must hold every (z, c, t) of the image, each as big-endian
        bytes of one plane; the image is only linked to the well once all its
        planes are written, so a reader never sees a placeholder."""

    def write_plane(self, image: ImageInfo, plane: PlaneIndex, data: bytes) -> ImageInfo:
        """Replace one plane of an existing image (big-endian bytes).

        OMERO's pixels are write-once, so this makes a new image holding every
        plane (the others read back from ``image``), puts it in ``image``'s
        place in its well and deletes ``image``: the returned image has new
        ids. What hangs on ``image`` (annotation links, ROIs, rendering
        settings) is carried to the new image; PermissionDenied, with nothing
        changed, if the caller may not carry all of it. Raises NotFound if
        ``image`` is in no well."""

    def delete(self, kind: str, ids: Sequence[int]) -> None:
        """Delete objects of an OMERO class (``"Plate"``, ``"Image"``...) and what they own."""
