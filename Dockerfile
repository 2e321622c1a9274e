# filterd: the service with the shipped model, on SQLite by default.
# The runtime needs onnxruntime and tokenizers, not torch: training extras are not installed.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY filterd ./filterd
COPY models ./models
RUN pip install --no-cache-dir -e . \
    && useradd --create-home --uid 10001 filterd \
    && mkdir -p /data && chown filterd /data

USER filterd
ENV FILTERD_MODEL_DIR=/app/models/filterd-minilm \
    FILTERD_DATABASE_URL=sqlite:////data/filterd.db \
    FILTERD_HOST=0.0.0.0 \
    FILTERD_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
CMD ["filterd", "serve"]
