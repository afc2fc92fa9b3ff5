# The REST gateway: CPU-only torch (decoding, the clean-image query, in-process fallback). Also
# the image of the CPU workers in Kubernetes (deploy/k8s/overlays/cpu) and of compose's models-init.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# One lock for development and the images: constraints.txt pins every package, torch included.
COPY constraints.txt ./
# CPU wheels of torch first (a fraction of the CUDA build's size), at the version of
# constraints.txt (torch==X matches the CPU build X+cpu); their dependencies come from PyPI below.
# hadolint ignore=DL3013
RUN pip install --no-deps --index-url https://download.pytorch.org/whl/cpu \
        -c constraints.txt torch torchvision
COPY pyproject.toml README.md ./
COPY service ./service
COPY denoisers ./denoisers
COPY benchmarks ./benchmarks
# The project itself comes from this checkout, everything else at the versions of
# constraints.txt (hence DL3013 off). /models is owned by the service user, so that a new
# named volume mounted there (compose's models volume) is writable by models-init.
# hadolint ignore=DL3013
RUN pip install -c constraints.txt ".[serve]" \
    && groupadd --gid 10001 dsmooth \
    && useradd --create-home --uid 10001 --gid 10001 dsmooth \
    && mkdir /models && chown 10001:10001 /models
USER 10001:10001

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["dsmooth", "serve", "--host", "0.0.0.0", "--port", "8000"]
