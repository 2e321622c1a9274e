#!/bin/sh
# The image's entrypoint: start every run with an empty PROMETHEUS_MULTIPROC_DIR, then run
# the command (default: filterd serve).
#
# prometheus-client keeps each worker's metric values in files there; files left by an
# earlier run of this container (docker restart keeps /tmp) would be summed into /metrics
# as if they were current, so the folder is emptied first.
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "${PROMETHEUS_MULTIPROC_DIR}"
    mkdir -p "${PROMETHEUS_MULTIPROC_DIR}"
fi
exec "$@"
