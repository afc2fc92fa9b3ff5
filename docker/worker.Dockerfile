# A chunk worker with CUDA torch: the PyPI wheels bring their CUDA libraries, the host brings an
# NVIDIA driver new enough for them (CUDA 13 for torch 2.14). Runs on the CPU where no GPU is given.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# One lock for development and the images: constraints.txt pins every package, torch and the
# NVIDIA libraries included (the same versions `make` installs).
COPY constraints.txt ./
# torch in a layer of its own: gigabytes that change less often than the code.
# hadolint ignore=DL3013
RUN pip install -c constraints.txt torch torchvision
COPY pyproject.toml README.md ./
COPY service ./service
COPY denoisers ./denoisers
COPY benchmarks ./benchmarks
# The project itself comes from this checkout, everything else at the versions of
# constraints.txt (hence DL3013 off).
# hadolint ignore=DL3013
RUN pip install -c constraints.txt ".[serve]" \
    && groupadd --gid 10001 dsmooth \
    && useradd --create-home --uid 10001 --gid 10001 dsmooth \
    && mkdir /models && chown 10001:10001 /models
USER 10001:10001

# Healthy while this worker's heartbeat (written every loop) is fresh; the check imports torch
# (a few seconds), hence the long timeout.
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
    CMD ["dsmooth", "worker-health"]
CMD ["dsmooth", "worker"]
