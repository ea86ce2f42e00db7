"""The gateway contract of resolution levels (``Gateway.resolution_levels`` and
reads of an ``ImageInfo.at_level`` image), for the suites whose backdoor can
seed a big image (one whose planes exceed the server's ``max_plane``, which
OMERO keeps only as a pyramid: a backdoor writing whole planes through
omero-py cannot make one, so the real-server suite does not run these).

What every OMERO promises: a big image's levels are the pyramid OMERO
builds (:func:`omerofs.gateway.levels.pyramid_sizes`), full resolution
first; any other image has one level, its own size; a level's planes and
tiles are that level's size and agree with each other; level 0 is the
image's own pixels. What the stand-ins (devserver, MemoryGateway) put in a
lower level is their documented rule (:func:`omerofs.gateway.levels.level_plane`),
checked here against the planes the backdoor stored.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from omerofs.gateway import Gateway, PlaneIndex
from omerofs.gateway.levels import level_plane, pyramid_sizes
from omerofs.gateway.types import ImageInfo, pixel_dtype

from .gateway_contract import Backdoor, _images, _seed_image


def _big_sizes(gateway: Gateway) -> tuple[int, int]:
    """A plane just over the server's pyramid threshold (one row and column
    more than the square of its area)."""
    width, height = gateway.max_plane()
    side = math.isqrt(width * height) + 1
    return side, side


class LevelsContract:
    """Subclasses provide ``gateway`` and a ``backdoor`` that can store big images."""

    @pytest.fixture(params=["uint8", "int16"])
    def big(self, request, gateway: Gateway, backdoor: Backdoor
            ) -> tuple[ImageInfo, dict[PlaneIndex, bytes]]:
        """A big image of two planes (z 0 and 1) and its planes as stored."""
        x, y = _big_sizes(gateway)
        dtype = pixel_dtype(request.param)
        rng = np.random.default_rng(7)
        planes = {PlaneIndex(z, 0, 0): rng.integers(-100, 100, (y, x)).astype(dtype).tobytes()
                  for z in range(2)}
        pid = backdoor.add_plate("levels")
        wid = backdoor.add_well(pid, 0, 0)
        iid = backdoor.add_image(wid, "big", (x, y, 2, 1, 1), request.param, planes)
        return _images(gateway, pid)[iid], planes

    def test_a_big_image_has_omeros_pyramid_asked_in_one_call(self, gateway: Gateway, big
                                                               ) -> None:
        image, _ = big
        before = sum(gateway.calls.values())
        levels = gateway.resolution_levels(image)
        assert sum(gateway.calls.values()) == before + 1
        assert levels == pyramid_sizes(image.size_x, image.size_y)
        assert len(levels) == 6 and levels[0] == (image.size_x, image.size_y)
        assert gateway.resolution_levels(image) == levels  # write-once: the same again

    def test_each_level_reads_its_own_pixels(self, gateway: Gateway, big) -> None:
        image, planes = big
        levels = gateway.resolution_levels(image)
        dtype = pixel_dtype(image.pixel_type)
        for z in (0, 1):
            full = np.frombuffer(planes[PlaneIndex(z, 0, 0)], dtype).reshape(
                image.size_y, image.size_x)
            for k in range(len(levels)):
                at = image.at_level(k, levels)
                plane = gateway.read_plane(at, PlaneIndex(z, 0, 0))
                assert len(plane) == at.plane_bytes == levels[k][0] * levels[k][1] * \
                    dtype.itemsize
                assert plane == level_plane(full, *levels[k]).tobytes(), (z, k)
                # a tile of the level: its rows 1..2, columns 1..3 of that plane
                got = np.frombuffer(gateway.read_tile(at, PlaneIndex(z, 0, 0), 1, 1, 3, 2),
                                    dtype).reshape(2, 3)
                want = np.frombuffer(plane, dtype).reshape(at.size_y, at.size_x)[1:3, 1:4]
                np.testing.assert_array_equal(got, want)
                with pytest.raises(ValueError):
                    gateway.read_tile(at, PlaneIndex(z, 0, 0), 0, 0, at.size_x + 1, 1)

    def test_full_resolution_after_a_level_is_full_resolution(self, gateway: Gateway, big
                                                              ) -> None:
        """A read at a level leaves the thread's store there (OMERO keeps a
        store's level): the next full-resolution read, with an image from
        the plate's load, must not get that level's pixels; also in another
        thread, and a level after another level."""
        image, planes = big
        levels = gateway.resolution_levels(image)
        plane = PlaneIndex(1, 0, 0)
        small = image.at_level(4, levels)
        gateway.read_tile(small, plane, 0, 0, small.size_x, 1)
        assert gateway.read_tile(image, plane, 0, 0, 7, 1) == \
            planes[plane][:7 * pixel_dtype(image.pixel_type).itemsize]
        mid = image.at_level(2, levels)
        first = gateway.read_plane(mid, plane)
        gateway.read_plane(small, plane)
        assert gateway.read_plane(mid, plane) == first
        out: list[bytes] = []
        t = threading.Thread(target=lambda: out.append(gateway.read_plane(image, plane)))
        t.start()
        t.join()
        assert out == [planes[plane]]

    def test_a_small_image_has_one_level_its_own(self, gateway: Gateway, backdoor: Backdoor
                                                 ) -> None:
        pid, _, iid, planes = _seed_image(backdoor, (5, 4, 1, 2, 1), "uint16")
        image = _images(gateway, pid)[iid]
        levels = gateway.resolution_levels(image)
        assert levels == ((5, 4),)
        at = image.at_level(0, levels)
        assert gateway.read_plane(at, PlaneIndex(0, 1, 0)) == planes[PlaneIndex(0, 1, 0)]
        with pytest.raises(ValueError):
            image.at_level(1, levels)
