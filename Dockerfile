# fastwsgi's image: the pre-fork master as PID 1, serving as a non-root user.
#
#   docker build -t fastwsgi .
#   docker run --rm -p 8000:8000 fastwsgi                  # the demo app
#   docker run --rm -p 8000:8000 -e WEB_CONCURRENCY=4 \
#       -v "$PWD:/app:ro" fastwsgi --bind 0.0.0.0:8000 myapp.wsgi:application
#
# docs/deploy.md covers building FROM this image, Kubernetes and graceful stops.
# The base is an argument so that a release can pick another Debian-like base.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS builder

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build-tools \
    && /opt/build-tools/bin/pip install --no-cache-dir build==1.6.1

WORKDIR /src
COPY . .
# The sdist first, then the wheel from the sdist: the release path, which
# compiles the C that the sdist carries. The linker drops the debug info
# (a sixth of the size remains) and keeps the symbols that perf needs.
RUN LDFLAGS="-Wl,--strip-debug" /opt/build-tools/bin/python -m build --outdir /dist .


FROM ${BASE_IMAGE} AS runtime

ENV PATH=/opt/fastwsgi/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FASTWSGI_HEALTHCHECK_URL=http://127.0.0.1:8000/

# python3-venv brings pip into /opt/fastwsgi, so an image built FROM this one
# can `pip install` the app's requirements.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 fastwsgi \
    && useradd --uid 10001 --gid fastwsgi --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin fastwsgi \
    && install -d -m 0755 /app

# Only the wheel reaches this stage: no sources, no compiler. (COPY rather than
# RUN --mount=from=builder: buildah cannot mount a stage it took from cache.)
COPY --from=builder /dist/*.whl /tmp/wheels/
RUN python3 -m venv /opt/fastwsgi \
    && pip install --no-cache-dir --no-index /tmp/wheels/fastwsgi-*.whl \
    && rm -rf /tmp/wheels

WORKDIR /app
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000

# Python, not curl: the image has no HTTP client. Point FASTWSGI_HEALTHCHECK_URL
# elsewhere when the app binds another port or has a health endpoint.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['FASTWSGI_HEALTHCHECK_URL'], timeout=4)"]

# Exec form: fastwsgi's master is PID 1 and gets `docker stop`'s SIGTERM
# itself, so in-flight requests drain (--graceful-timeout, 30 s by default).
# The worker count comes from -w, or else WEB_CONCURRENCY (default 1).
ENTRYPOINT ["fastwsgi"]
CMD ["--bind", "0.0.0.0:8000", "fastwsgi.demo:app"]
