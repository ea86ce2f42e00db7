"""The rendering settings part of the gateway contract (``--zarr``'s
``omero`` block): what :meth:`~omerofs.gateway.Gateway.plate_rendering`
answers for settings saved through the backdoor, and how the rendering
fingerprint follows them. Which user's settings win is tested with several
users on the devserver (tests/mount/test_zarr_rendering.py) and in memory
(tests/core/test_zarr_rendering.py)."""

from __future__ import annotations

from omerofs.gateway import ChannelRendering, Gateway, ImageRendering

from .gateway_contract import Backdoor, _name, _planes

#: two channels: red over 10..900, and a dimmed inverted one, inactive
SETTINGS = ImageRendering("greyscale", 1, 0, (
    ChannelRendering(0xFF0000, 10.0, 900.0, True, "linear", 1.0, False),
    ChannelRendering(0x00FF80, -2.5, 70.25, False, "exponential", 0.5, True)))
LATER = SETTINGS._replace(model="rgb", channels=(
    SETTINGS.channels[0]._replace(color=0x0000FF, end=4000.0), SETTINGS.channels[1]))


def _plate_of_two(backdoor: Backdoor) -> tuple[int, int, int]:
    """A plate with wells (0, 0) and (0, 1), one two-channel image each."""
    pid = backdoor.add_plate(_name())
    images = []
    for column in (0, 1):
        wid = backdoor.add_well(pid, 0, column)
        images.append(backdoor.add_image(wid, f"field{column}", (4, 3, 2, 2, 1), "uint16",
                                         _planes(4, 3, 2, 2, 1, "uint16", seed=column)))
    return pid, images[0], images[1]


class RenderingContract:
    """Mixed into a GatewayContract subclass (its ``gateway`` and ``backdoor``)."""

    def test_saved_settings_are_read_back_exactly_and_only_where_saved(
            self, gateway: Gateway, backdoor: Backdoor) -> None:
        pid, first, second = _plate_of_two(backdoor)
        assert gateway.plate_rendering(pid).images == {}
        backdoor.save_rendering(first, SETTINGS)
        assert dict(gateway.plate_rendering(pid).images) == {first: SETTINGS}
        # a user's later settings are the ones the rendering engine takes
        backdoor.save_rendering(first, LATER)
        assert dict(gateway.plate_rendering(pid).images) == {first: LATER}
        assert second not in gateway.plate_rendering(pid).images

    def test_rendering_fingerprint_follows_the_settings(self, gateway: Gateway,
                                                        backdoor: Backdoor) -> None:
        pid, _, second = _plate_of_two(backdoor)

        def rendering_fp() -> object:
            fp = gateway.plate_fingerprint(pid, rendering=True)
            assert fp.rendering == gateway.plate_rendering(pid).fingerprint  # same snapshot
            return fp.rendering

        plain = gateway.plate_fingerprint(pid)
        assert plain.rendering is None  # not asked: not read
        before = rendering_fp()
        assert before == rendering_fp()
        backdoor.save_rendering(second, SETTINGS)
        after = rendering_fp()
        assert after != before
        backdoor.save_rendering(second, LATER)
        assert rendering_fp() not in (before, after)
        # the plain fingerprint does not see settings (a mount without --zarr)
        assert gateway.plate_fingerprint(pid).key() == plain.key()
