"""Cost of building synthesized TIFF headers (moved out of the tests: timing
targets live in benchmarks). Prints each figure with MET or MISSED.

    .venv/bin/python benchmarks/tiff_headers.py
"""

from __future__ import annotations

import time

from omerofs.gateway.types import ImageInfo
from omerofs.plane_sizes import channel_file_sizes
from omerofs.tiff import TiffLayout, plane_layout

TARGET_S = 100e-6  # one plain header, uncached


def per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n


def main() -> None:
    plain = per_call(lambda i: TiffLayout(1000 + i, 1000, "uint16"), 2000)
    print(f"plain header: {plain * 1e6:.1f} us "
          f"({'MET' if plain < TARGET_S else 'MISSED'} against {TARGET_S * 1e6:.0f} us)")

    def image(i: int) -> ImageInfo:
        return ImageInfo(id=i, name=f"A01_s{i:03d}", pixels_id=10**6 + i, size_x=512,
                         size_y=512, size_z=3, size_c=4, size_t=1, pixel_type="uint16",
                         physical_size_x=0.65, physical_size_y=0.65, physical_size_z=2.0,
                         channel_names=("DAPI", "GFP", "RFP", "Cy5"))

    calibrated = per_call(lambda i: plane_layout(image(i), 1, 2, 0), 2000)
    print(f"calibrated layout: {calibrated * 1e6:.1f} us (built when a plane is read)")
    sizes = per_call(lambda i: channel_file_sizes(image(10**5 + i)), 500)
    print(f"sizes of one image's planes (4 channels) for a listing: {sizes * 1e6:.1f} us "
          f"= {sizes / 12 * 1e6:.1f} us per plane of 3 z x 4 c")


if __name__ == "__main__":
    main()
