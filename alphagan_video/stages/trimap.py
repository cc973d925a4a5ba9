"""The trimap stage: evidence trimaps (``trimap.auto_trimap``) or the AlphaGAN band (``make_trimap``)."""
from __future__ import annotations

from alphagan_video.engine import Stage, Work


class TrimapStage(Stage):
    """``work.mask`` (+ ``work.soft``, ``work.image``) -> ``work.trimap`` (B,1,H,W) {0,0.5,1}.

    band_px: total width of the unknown band (>= 0; 0 = a binary trimap, no unknown band).
    auto: derive the trimap from evidence (the source's soft probability, fine structure,
        local colour models), the contour from the stabilised mask; False = the AlphaGAN
        erosion/dilation routine at ``band_px``.
    Work that already has a trimap (user trimaps) passes unchanged.
    """

    name = "trimap"

    def __init__(self, band_px: int, auto: bool):
        self.band_px = band_px
        self.auto = auto

    def __call__(self, work: Work) -> Work:
        from alphagan_video.trimap import auto_trimap, make_trimap

        if work.trimap is not None:
            return work
        if self.auto:
            work.trimap = auto_trimap(work.image, work.soft.float(), self.band_px, binary=work.mask)
        else:
            work.trimap = make_trimap(work.mask, self.band_px)
        return work
