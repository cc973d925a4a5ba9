"""Stage 3: the AlphaGAN generator, RGB + trimap -> alpha, on whole frames or tiles of the band."""
from alphagan_video.stages.s3_generator.stage import GeneratorStage, prepare_generator

__all__ = ["GeneratorStage", "prepare_generator"]
