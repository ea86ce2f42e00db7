"""Plate reads over omero-py: the root's plates, a plate's row, layout and fingerprint.

Part of the omero-py gateway (:mod:`omerofs.gateway.omero`), split out to
keep each module small; :class:`PlateReads` is a mixin of
:class:`~omerofs.gateway.omero.OmeroGateway` and uses its session plumbing.
A plate's structure is one projection (queries.PLATE_LAYOUT, one row per
Channel of each field), its fingerprint one more (queries.PLATE_FINGERPRINT).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import queries as Q
from .errors import NotFound
from .omero_writes import GatewayPlumbing
from .types import (
    ChannelRendering,
    ImageInfo,
    ImageRendering,
    PlateFingerprint,
    PlateRendering,
    PlateStructure,
    PlateSummary,
    WellInfo,
    WellSampleInfo,
    to_micrometres,
)


class PlateReads(GatewayPlumbing):
    """The plate operations of the Gateway protocol (a mixin)."""

    @staticmethod
    def _plate(row: list[Any]) -> PlateSummary:
        pid, name, rows, cols, created, status, row_naming, column_naming, version = row
        return PlateSummary(id=int(pid), name=name or "", rows=rows, columns=cols,
                            created=(created or 0) / 1000.0,
                            derived=status == Q.DERIVED_STATUS,
                            row_naming=row_naming, column_naming=column_naming,
                            version=version)

    def plate_fingerprint(self, plate_id: int, rendering: bool = False) -> PlateFingerprint:
        # one call (queries.PLATE_FINGERPRINT): the plate's row, then the
        # fingerprints of its layout and of its files (and of the rendering
        # settings, queries.PLATE_FINGERPRINT_RENDERING)
        if rendering:
            rows = self._projection(Q.PLATE_FINGERPRINT_RENDERING, pid=plate_id,
                                    uid=self.account().user_id)
        else:
            rows = self._projection(Q.PLATE_FINGERPRINT, pid=plate_id)
        if not rows:
            raise NotFound(f"no Plate {plate_id}")
        row = rows[0]
        n = len(Q.LAYOUT_FINGERPRINT_COLUMNS)
        r = len(Q.RENDERING_FINGERPRINT_COLUMNS) if rendering else 0
        layout = tuple(row[9:9 + n])
        # no wells (a null sum of wells): unknown, as load_plate says without rows
        return PlateFingerprint(plate=self._plate(row[:9]),
                                layout=layout if layout[0] is not None else None,
                                files=tuple(row[9 + n:len(row) - r]),
                                rendering=tuple(row[len(row) - r:]) if rendering else None)

    def plate_rendering(self, plate_id: int) -> PlateRendering:
        # one call (queries.PLATE_RENDERING): the candidates of OMERO's rule,
        # the session user's and the Pixels owners' settings; picked here
        uid = self.account().user_id
        rows = self._projection(Q.PLATE_RENDERING, pid=plate_id, uid=uid)
        r = len(Q.RENDERING_FINGERPRINT_COLUMNS)
        return PlateRendering(images=pick_rendering(rows, uid),
                              fingerprint=tuple(rows[0][-r:]) if rows else (None,) * r)

    def list_plates(self) -> list[PlateSummary]:
        return [self._plate(r) for r in self._projection(Q.LIST_PLATES)]

    def get_plate(self, plate_id: int) -> PlateSummary:
        rows = self._projection(Q.GET_PLATE, pid=plate_id)
        if not rows:
            raise NotFound(f"no Plate {plate_id}")
        return self._plate(rows[0])

    def load_plate(self, plate_id: int, plate: PlateSummary | None = None) -> PlateStructure:
        if plate is None:
            plate = self.get_plate(plate_id)
        # PLATE_LAYOUT gives one row per Channel of each sample (see queries.py):
        # a sample's rows are consecutive, in channel order. A sample's image
        # is made once its channel names are all read (a plate of 13,824
        # fields: no second ImageInfo per field to add them).
        Sample = tuple[int, dict[str, Any], dict[int, str], Any, Any]
        wells: dict[int, tuple[int | None, int | None, dict[int, Sample]]] = {}
        rows = self._projection(Q.PLATE_LAYOUT, pid=plate_id)
        # the same on every row (the layout's fingerprint); unknown without rows
        n = len(Q.LAYOUT_FINGERPRINT_COLUMNS)
        fingerprint = tuple(rows[0][-n:]) if rows else None
        for (wid, row, col, wsid, idx, iid, iname, pxid, sx, sy, sz, sc, st, ptype,
             px, px_unit, py, py_unit, pz, pz_unit, ch_idx, ch_name, run_id, run_start,
             *_) in rows:
            entry = wells.get(wid)
            if entry is None:
                entry = wells[wid] = (row, col, {})
            if wsid is None or pxid is None:
                continue  # an empty well, or a field without pixels
            sample = entry[2].get(wsid)
            if sample is None:
                image = dict(id=iid, name=iname or "", pixels_id=pxid, size_x=sx,
                             size_y=sy, size_z=sz, size_c=sc, size_t=st, pixel_type=ptype,
                             physical_size_x=to_micrometres(px, px_unit),
                             physical_size_y=to_micrometres(py, py_unit),
                             physical_size_z=to_micrometres(pz, pz_unit))
                sample = entry[2][wsid] = (idx if idx is not None else -1, image, {},
                                           run_id, run_start)
            if ch_idx is not None:
                sample[2][ch_idx] = ch_name or ""
        return PlateStructure(plate=plate, wells=tuple(
            WellInfo(id=wid, row=r, column=c, samples=tuple(
                WellSampleInfo(id=wsid, index=index, image=_image(image, names),
                               run_id=run_id,
                               run_start=run_start / 1000.0 if run_start is not None else None)
                for wsid, (index, image, names, run_id, run_start) in samples.items()))
            for wid, (r, c, samples) in wells.items()
        ), fingerprint=fingerprint)


def _image(fields: dict[str, Any], names: Mapping[int, str]) -> ImageInfo:
    """The image of a field's rows, with the names of its Channel rows: one
    per channel 0..sizeC-1, "" for a channel missing from the rows or
    unnamed; none at all when it had no Channel row."""
    if names:
        fields["channel_names"] = tuple(names.get(c, "") for c in range(fields["size_c"]))
    return ImageInfo(**fields)


def pick_rendering(rows: list[list[Any]], uid: int) -> dict[int, ImageRendering]:
    """Per image, the RenderingDef OMERO's rendering engine gives user
    ``uid`` (queries.py, "rendering settings"): of the rows of
    queries.PLATE_RENDERING, the user's own settings updated last, else the
    Pixels owner's updated last. An image whose settings do not bind each
    of its channels in order is left out (OMERO's renderer refuses them)."""
    best: dict[int, tuple[tuple[bool, int, int], int]] = {}  # image -> (rank, rdef id)
    bindings: dict[int, dict[int, ChannelRendering]] = {}
    heads: dict[int, tuple[str, int, int]] = {}
    for (iid, _pix_owner, rid, owner, event, dz, dt, model, c, red, green, blue, _alpha,
         start, end, active, family, coefficient, reverse, *_) in rows:
        rank = (owner == uid, event or 0, rid)  # own first, then the latest
        if iid not in best or rank > best[iid][0]:
            best[iid] = (rank, rid)
        if rid not in heads:
            heads[rid] = (str(model), int(dz), int(dt))
        bindings.setdefault(rid, {})[int(c)] = ChannelRendering(
            (int(red) & 255) << 16 | (int(green) & 255) << 8 | (int(blue) & 255),
            float(start), float(end), bool(active), str(family), float(coefficient),
            bool(reverse))
    out = {}
    # settings copied to every image of a plate (OMERO clients' "paste to
    # all") are equal: kept once, shared by the images
    same: dict[ImageRendering, ImageRendering] = {}
    for iid, (_, rid) in best.items():
        channels = bindings[rid]
        if sorted(channels) != list(range(len(channels))):
            continue
        model, dz, dt = heads[rid]
        r = ImageRendering(model, dz, dt, tuple(channels[c] for c in range(len(channels))))
        out[iid] = same.setdefault(r, r)
    return out
