# syntax=docker/dockerfile:1
# filterd: the HTTP service with the shipped model, SQLite on a volume by default.
# Build:  docker build -t filterd .
# Run:    docker run -p 8080:8080 -v filterd-data:/data filterd      (README "Operations")

# --- build: a virtual environment with filterd and its runtime dependencies only ----------
# The runtime needs onnxruntime and tokenizers, never torch: the [train] extra is not installed.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY filterd ./filterd
# A regular (not editable) install: the package data (lexicons, policy, migrations, web pages)
# goes into site-packages with the code, and nothing points back at /src.
RUN pip install . \
    && python -c "import filterd.api.app, filterd.store.migrations, onnxruntime, tokenizers" \
    && ! python -c "import torch" 2>/dev/null

# --- runtime: the venv, the model, a non-root user ------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home filterd \
    && mkdir -p /data \
    && chown filterd:filterd /data
COPY --from=build /opt/venv /opt/venv
# The shipped model (int8 ONNX, tokenizer, SHA-256 manifest, model card and licences). The
# package looks for it beside a source checkout; in the image FILTERD_MODEL_DIR points here.
COPY models/filterd-minilm /opt/filterd/models/filterd-minilm
COPY deploy/docker-entrypoint.sh /usr/local/bin/filterd-entrypoint
RUN chmod 0755 /usr/local/bin/filterd-entrypoint

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FILTERD_HOST=0.0.0.0 \
    FILTERD_PORT=8080 \
    FILTERD_MODEL_DIR=/opt/filterd/models/filterd-minilm \
    FILTERD_DATABASE_URL=sqlite:////data/filterd.db \
    PROMETHEUS_MULTIPROC_DIR=/tmp/filterd-metrics

USER filterd
WORKDIR /data
# The SQLite database (and its WAL files); unused with FILTERD_DATABASE_URL=postgresql://...
VOLUME ["/data"]
EXPOSE 8080
# Ready = the model answers and the store takes a write (GET /readyz); slim has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('FILTERD_PORT', '8080') + '/readyz', timeout=4)"]
ENTRYPOINT ["filterd-entrypoint"]
CMD ["filterd", "serve"]
