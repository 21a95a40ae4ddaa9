"""The sandbox: wanvid's built-in gateway emulator (``wanvid sandbox``), a product of its own."""

from wanvid.sandbox.server import FLAVORS, MALFORMED_KINDS, Faults, Sandbox, min_video_size, sample_mp4

__all__ = ["FLAVORS", "MALFORMED_KINDS", "Faults", "Sandbox", "min_video_size", "sample_mp4"]
