"""wanvid: still image → video with Alibaba's Wan image-to-video models through the ope.ai gateway."""

__version__ = "0.1.0"
