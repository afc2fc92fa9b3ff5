"""The model zoo: denoiser and classifier architectures (each module registers its builders in
:mod:`denoisers.registry`), the shipped checkpoints, checkpoint I/O, and training."""

# Each architecture module registers its own builders, as timm's model modules do.
from denoisers import classifiers, dncnn, unet  # noqa: F401
