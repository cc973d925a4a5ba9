"""The stages of a run, one folder each, in the order the data flows through them::

    decoded frames (io)
      -> s1_mask        coarse mask per frame (a mask source), stabilised over time; or user trimaps
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
from alphagan_video.stages.base import Stage, UploadStage, Work, frames_to_tensor

__all__ = ["Stage", "UploadStage", "Work", "frames_to_tensor"]
