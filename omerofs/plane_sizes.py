"""Sizes of plane files for a listing, without building each plane's header.

A listing must give every plane file its exact size (``st_size``), which is
its calibrated TIFF layout's (:mod:`omerofs.tiff`). Building tens of
thousands of headers per plate costs seconds, but a header's length depends
only on the lengths of its metadata's text and numbers, which the planes and
images of a plate mostly share: :func:`plane_file_size` builds one layout per
such pattern of lengths, :func:`channel_file_sizes` sizes one image per
pattern of its whole metadata.
"""

from __future__ import annotations

import operator
from dataclasses import fields, replace
from typing import Any

from .gateway.types import ImageInfo, served_pixel_type
from .omexml import written_as_is
from .tiff import PlaneMeta, layout_for, plane_meta


def channel_file_sizes(image: ImageInfo) -> list[int] | None:
    """Size of each channel's plane files when it is the same for every z
    and t of that channel (the header's length grows only with the digits
    of z and t, so the first and last plane bound the others), else None.
    Lets a listing size tens of thousands of calibrated planes without
    building each one's layout.

    Cached by :func:`_image_lengths`: the images of a plate differ in ids
    and names, mostly not in their lengths, so a plate's listing sizes a
    handful of images, not each (a quarter of a 4,608-plane listing's time
    went here before)."""
    key = _image_lengths(image)
    if key is None:
        sizes = _channel_file_sizes(image)
    elif key in _CHANNEL_SIZES:
        sizes = _CHANNEL_SIZES[key]
    else:
        sizes = _channel_file_sizes(image)
        if len(_CHANNEL_SIZES) > 4096:
            _CHANNEL_SIZES.clear()
        _CHANNEL_SIZES[key] = sizes
    return None if sizes is None else list(sizes)


#: channel_file_sizes' answers (a tuple, or None) by :func:`_image_lengths`
_CHANNEL_SIZES: dict[tuple[object, ...], tuple[int, ...] | None] = {}


def _image_lengths(image: ImageInfo) -> tuple[object, ...] | None:
    """What the sizes of all of ``image``'s plane files depend on: its shape
    and pixel type, :func:`_lengths` of its first plane's metadata (ids,
    name, calibration; the z, c and t of other planes have lengths set by
    the shape) and the text length of every channel's name. None where a
    text needs escapes (then each size is computed)."""
    first = _lengths(plane_meta(image, 0, 0, 0))
    if first is None:
        return None
    names: list[object] = []
    for c in range(image.size_c):
        v = image.channel_name(c)
        if v is None:
            names.append(None)
        elif written_as_is(v):
            names.append(len(v))
        else:
            return None
    return (image.size_x, image.size_y, image.size_z, image.size_c, image.size_t,
            served_pixel_type(image.pixel_type), first, tuple(names))


def _channel_file_sizes(image: ImageInfo) -> tuple[int, ...] | None:
    last_z, last_t = image.size_z - 1, image.size_t - 1
    sizes = []
    for c in range(image.size_c):
        first = plane_file_size(image, 0, c, 0)
        if (last_z or last_t) and plane_file_size(image, last_z, c, last_t) != first:
            return None
        sizes.append(first)
    return tuple(sizes)


def plane_file_size(image: ImageInfo, z: int, c: int, t: int) -> int:
    """``plane_layout(image, z, c, t).file_size``, without building that
    plane's header: the size of a layout whose metadata has the same text
    lengths (see :func:`_lengths`), which the planes of a plate share (a
    plate's listing builds a handful of layouts, not one per plane)."""
    meta = plane_meta(image, z, c, t)
    ptype = served_pixel_type(image.pixel_type)  # as plane_layout: "bit" is uint8
    key = _lengths(meta)
    if key is None:  # text that needs escapes: this plane's own layout
        return layout_for(image.size_x, image.size_y, ptype, meta).file_size
    key = (image.size_x, image.size_y, ptype, *key)
    size = _SIZES.get(key)
    if size is None:
        values: dict[str, Any] = {
            name: _like(v) for name, v in zip(_META_FIELDS, key[3:], strict=True)
            if isinstance(v, tuple)}
        same = replace(meta, **values)
        size = layout_for(image.size_x, image.size_y, ptype, same).file_size
        if len(_SIZES) > 4096:
            _SIZES.clear()
        _SIZES[key] = size
    return size


#: plane_file_size's sizes by image shape and _lengths
_SIZES: dict[tuple[object, ...], int] = {}


def _lengths(meta: PlaneMeta) -> tuple[object, ...] | None:
    """What of ``meta`` the length of a plane's header depends on: numbers
    other than integers as they are; integers as ``(1, characters,
    negative)`` and plain text as ``(2, length)``. An XML attribute or
    character data that is plain printable ASCII is written as it is (no
    escape: :func:`omerofs.omexml.written_as_is`), so metadata with the same lengths makes a
    header exactly as long. None if a text is not plain (its escapes change
    its length) or a field is of another type."""
    out: list[object] = []
    for v in _meta_values(meta):
        t = type(v)
        if t is int:
            out.append((1, len(str(v)), v < 0))
        elif t is str:
            if not written_as_is(v):
                return None
            out.append((2, len(v)))
        elif v is None or t is float or t is bool:
            out.append(v)  # as it is (calibration: also the resolution tags)
        else:
            return None
    return tuple(out)


def _like(length: tuple[int, ...]) -> object:
    """A value written with the length :func:`_lengths` gave: ``x`` repeated,
    or the smallest integer of as many characters."""
    if length[0] == 2:
        return "x" * length[1]
    _, n, negative = length
    return -(10 ** (n - 2)) if negative else 10 ** (n - 1)


_META_FIELDS = tuple(f.name for f in fields(PlaneMeta))
_meta_values = operator.attrgetter(*_META_FIELDS)
