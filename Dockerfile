# syntax=docker/dockerfile:1
# One image for every wirewatch service; the command picks the service (docker-compose.yml and
# deploy/k8s/ run it as `poller`, `extractor`, `dedup`, `coder`):
#   docker build -t wirewatch:0.1.0 .   &&   docker run --rm wirewatch:0.1.0 --help
# Every dependency ships as a wheel for CPython 3.11 on manylinux, so no compiler is needed.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/wirewatch
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services/ services/
COPY wirewatch_tools/ wirewatch_tools/
RUN /opt/wirewatch/bin/pip install .

FROM python:3.11-slim-bookworm
# Metrics and probes listen on every interface inside the container, on one fixed port.
ENV PATH=/opt/wirewatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WIREWATCH_SCHEMAS_DIR=/opt/wirewatch/schemas \
    WIREWATCH_POLLER_METRICS_HOST=0.0.0.0 WIREWATCH_POLLER_METRICS_PORT=9100 \
    WIREWATCH_EXTRACTOR_METRICS_HOST=0.0.0.0 WIREWATCH_EXTRACTOR_METRICS_PORT=9100 \
    WIREWATCH_DEDUP_METRICS_HOST=0.0.0.0 WIREWATCH_DEDUP_METRICS_PORT=9100 \
    WIREWATCH_CODER_METRICS_HOST=0.0.0.0 WIREWATCH_CODER_METRICS_PORT=9100 \
    WIREWATCH_FAUST_DATADIR=/var/lib/wirewatch/faust \
    WIREWATCH_CODER_DATA_DIR=/var/lib/wirewatch/coder
RUN groupadd --system --gid 10001 wirewatch \
    && useradd --system --uid 10001 --gid wirewatch --home-dir /var/lib/wirewatch \
       --shell /usr/sbin/nologin wirewatch \
    && install -d -o wirewatch -g wirewatch /var/lib/wirewatch
COPY --from=build /opt/wirewatch /opt/wirewatch
# The message contracts, found through WIREWATCH_SCHEMAS_DIR (the package is not installed
# beside the repository's schemas/ here).
COPY schemas/ /opt/wirewatch/schemas/
# Local state (Faust's table stores: dedup under WIREWATCH_FAUST_DATADIR, the coder under
# WIREWATCH_CODER_DATA_DIR) lives under /var/lib/wirewatch, which compose and k8s mount writable.
WORKDIR /var/lib/wirewatch
USER 10001:10001
EXPOSE 9100
ENTRYPOINT ["wirewatch"]
CMD ["--help"]
