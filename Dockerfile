# cratedig: the web page and REST service (`cratedig serve`) in a slim Debian image.
#
#   podman build --isolation=chroot -t cratedig .          (or: docker build -t cratedig .)
#   docker run -p 8000:8000 -e CRATEDIG_TOKEN=... -v ~/Music:/music:ro -v cratedig:/data cratedig
#
# BASE can be a local image made with debootstrap (docker/base.sh) where no registry is reachable.
ARG BASE=debian:bookworm-slim
# Extra pip options: docker/ci.sh builds every wheel outside (docker/wheels/) and installs
# with "--no-index --find-links /wheels", for machines whose build cannot reach PyPI directly.
ARG PIP_OPTIONS=""

FROM ${BASE} AS build
ARG PIP_OPTIONS
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY docker/wheels /wheels
COPY pyproject.toml README.md /src/
COPY src /src/src
# Only the runtime dependencies (no dev/bench extras); no pip cache, no bytecode of tests.
RUN python3 -m venv /opt/cratedig \
 && /opt/cratedig/bin/pip install --no-cache-dir --no-compile ${PIP_OPTIONS} /src \
 && find /opt/cratedig -depth \( -name tests -o -name '__pycache__' \) -type d -exec rm -rf {} + \
 && rm -rf /opt/cratedig/lib/python3*/site-packages/pip

FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ffmpeg libsndfile1 libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin cratedig \
 && mkdir -p /data /music && chown cratedig /data
COPY --from=build /opt/cratedig /opt/cratedig
ENV PATH=/opt/cratedig/bin:$PATH \
    CRATEDIG_DATA=/data \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba
USER cratedig
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Bound beyond loopback, so writes need CRATEDIG_TOKEN (the server refuses to start without it).
CMD ["cratedig", "serve", "--host", "0.0.0.0", "--port", "8000", "--music", "/music"]
