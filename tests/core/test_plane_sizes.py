"""Plane file sizes of a listing without a layout per plane (issue 13 item 2):
:func:`omerofs.plane_sizes.plane_file_size` equals the size of the plane's own
layout (its header, OME-XML and all) for names, ids, indexes and calibrations
of every length and for text that XML must escape."""

from __future__ import annotations

import random

import pytest

from omerofs.gateway.types import ImageInfo
from omerofs.plane_sizes import channel_file_sizes, plane_file_size
from omerofs.tiff import TiffLayout, plane_meta

NAMES = ["", "a", "plate 1 r0 c0 f0", "x" * 300, "caf\u00e9", "a&b", "<tag>", 'say "hi"',
         "tab\there", "line\nbreak", "\x01ctl", "\u00b5m \U0001f52c"]


def images(n: int, seed: int) -> list[ImageInfo]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        size_c = rng.randint(1, 4)
        out.append(ImageInfo(
            id=rng.choice([0, 1, 9, 10, 99, 12345, 10**12]),
            name=rng.choice(NAMES), pixels_id=rng.choice([1, 10, 999, 10**9]),
            size_x=rng.choice([1, 16, 1000]), size_y=rng.choice([1, 7, 2048]),
            size_z=rng.choice([1, 9, 10, 101]), size_c=size_c, size_t=rng.choice([1, 10]),
            pixel_type=rng.choice(["uint8", "uint16", "float", "int32"]),
            physical_size_x=rng.choice([None, 0.65, 1 / 3, 1e-9]),
            physical_size_y=rng.choice([None, 0.65, 2.0]),
            physical_size_z=rng.choice([None, 1.5]),
            channel_names=tuple(rng.choice(NAMES) for _ in range(size_c))))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_sizes_equal_the_planes_own_layouts(seed):
    for image in images(60, seed):
        for z in {0, image.size_z - 1}:
            for c in range(image.size_c):
                for t in {0, image.size_t - 1}:
                    own = TiffLayout(image.size_x, image.size_y, image.pixel_type,
                                     plane_meta(image, z, c, t))
                    assert plane_file_size(image, z, c, t) == own.file_size, (image, z, c, t)
        sizes = channel_file_sizes(image)
        if sizes is not None:
            assert sizes == [TiffLayout(image.size_x, image.size_y, image.pixel_type,
                                        plane_meta(image, 0, c, 0)).file_size
                             for c in range(image.size_c)]


def _own_sizes(image: ImageInfo) -> list[int]:
    return [TiffLayout(image.size_x, image.size_y, image.pixel_type,
                       plane_meta(image, 0, c, 0)).file_size for c in range(image.size_c)]


@pytest.mark.parametrize("field,values", [
    ("id", [7, 8, 70, 10**6, -3]),
    ("pixels_id", [1, 2, 10, 10**9]),
    ("name", ["a1", "b2", "abc", "", "a&b", "caf\u00e9"]),
    ("physical_size_x", [0.5, 0.25, 1 / 3, None]),
    ("physical_size_z", [1.5, 2.5, None]),
    ("channel_names", [("DAPI", "GFP"), ("Cy5", "GFP"), ("DAPI", "RFP1"), ("", "GFP"),
                       ("D&PI", "GFP"), ("DAPI",), ("DAPI", "G"), ("DAPI", "G" * 90)]),
])
def test_sizes_of_a_plates_images_differing_in_one_field(field, values):
    """channel_file_sizes is cached per image shape and metadata lengths:
    images of one plate alike but for one field, asked one after the other,
    each get their own layouts' sizes (a key that left out what the field
    changes would answer an earlier image's sizes). Headers are padded to
    an alignment, so the images' other text is first made long enough for
    these values to change the file size."""
    base = dict(id=11, name="", pixels_id=12, size_x=16, size_y=16, size_z=3, size_c=2,
                size_t=1, pixel_type="uint16", physical_size_x=0.65, physical_size_y=0.65,
                physical_size_z=2.0, channel_names=("DAPI", "GFP"))
    pad = "channel_names" if field == "name" else "name"
    for n in range(600):  # the padding that puts the header at an alignment boundary
        if pad == "name":
            trial = {**base, "name": "n" * n}
        else:
            trial = {**base, "channel_names": ("c" * n, "GFP")}
        imgs = [ImageInfo(**{**trial, field: v}) for v in values]  # type: ignore[arg-type]
        if len({tuple(_own_sizes(i)) for i in imgs}) > 1:
            break
    else:
        raise AssertionError(f"no padding makes {field} change a file size")
    for image in imgs:
        assert channel_file_sizes(image) == _own_sizes(image), (field, image)
