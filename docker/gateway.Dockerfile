# The REST gateway: CPU-only torch (decoding, the clean-image query, in-process fallback).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# CPU wheels of torch first (a fraction of the CUDA build's size), then the project.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.5.1" "torchvision==0.20.1"
COPY pyproject.toml README.md ./
COPY service ./service
COPY denoisers ./denoisers
COPY benchmarks ./benchmarks
# The project itself is installed from this checkout: nothing to pin (hence DL3013 off).
# hadolint ignore=DL3013
RUN pip install ".[aws]" \
    && useradd --create-home --uid 10001 dsmooth
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["dsmooth", "serve", "--host", "0.0.0.0", "--port", "8000"]
