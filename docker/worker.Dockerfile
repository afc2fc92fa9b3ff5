# A chunk worker: CUDA torch from the PyTorch runtime image; runs on the CPU where no GPU is given.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY denoisers ./denoisers
COPY benchmarks ./benchmarks
# hadolint ignore=DL3013
RUN pip install ".[aws]" \
    && useradd --create-home --uid 10001 dsmooth
USER 10001

# Healthy while this worker's heartbeat (written every loop) is fresh.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["dsmooth", "worker-health"]
CMD ["dsmooth", "worker"]
