"""The stages of a run, one folder each, in the order the data flows through them::

    decoded frames (io)
      -> s1_mask        coarse mask per frame (the mask sources: person, sam, chroma, plate,
                        file), stabilised over time; or the user's trimaps
      -> s2_trimap      trimap: evidence-based (auto) or the AlphaGAN erosion/dilation band
      -> s3_generator   AlphaGAN generator: RGB + trimap -> alpha (whole frames or tiles)
      -> s4_refine      matting-Laplacian solve with the generator's alpha (and the temporal
                        prior) as data terms
      -> s5_temporal    motion-compensated smoothing; hands each frame's prior to s4 first
      -> s6_foreground  foreground colour, coverage bookkeeping, the output arrays
    -> sink (io: encoder, raw frames)

Each stage is a :class:`Stage` taking and returning a :class:`Work` (one batch on its way);
stateful stages keep their state as attributes. ``engine.run(source, stages, sink)`` drives
them; ``pipeline.build_chain`` builds the list from a ``PipelineConfig``.
"""
_BASE_NAMES = ("Stage", "UploadStage", "Work", "frames_to_tensor")


def __getattr__(name: str):
    """The base names load on first use (they import torch; ``stages.s1_mask``'s registry of mask
    sources must stay importable without it, for the CLI's fast start)."""
    if name in _BASE_NAMES:
        from alphagan_video.stages import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Stage", "UploadStage", "Work", "frames_to_tensor"]
