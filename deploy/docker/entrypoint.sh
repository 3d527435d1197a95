#!/bin/sh
# Entrypoint of the attention-serve image (Dockerfile); docker-compose.yml runs it in both Ray roles.
#
#   head   [ray start flags...]  a Ray head node, then `serve deploy $SERVE_CONFIG` onto it (the default): all its
#                                applications (the front, the sentiment and the QA ingress) in one submission. The
#                                container lives as long as the Ray node: if the config cannot be deployed, it stops.
#   worker [ray start flags...]  a Ray worker node joining $RAY_HEAD_ADDRESS (default ray-head:6379); Serve places
#                                replicas on it when the head's CPUs are taken.
#   anything else                runs as a command: `attention-serve predict sentiment "what a film"`, `bash`, ...
#
# Both roles export Ray's Prometheus metrics (Serve's and the service's own) on $RAY_METRICS_EXPORT_PORT (8080).
# Both start Ray with this process's environment, which every Ray process inherits: the image's RAY_SERVE_* proxy
# variables (Dockerfile) select Serve's HTTP proxy, HAProxy by default, on every node alike.
#
# Ray token authentication (Ray 2.60 enables it for new clusters; RAY_AUTH_MODE, default here `token`): the head
# creates the cluster's token once, in ~/.ray/auth_token, unless RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH supply one.
# Every worker needs the same token (docker-compose.yml shares ~/.ray as a volume). The dashboard asks for it:
# `ray get-auth-token` in the head container prints it. RAY_AUTH_MODE=disabled turns authentication off.
#
# KubeRay (deploy/kubernetes/rayservice.yaml) does not use this script: it starts Ray with its own command and deploys
# serveConfigV2 itself.
set -eu

SERVE_CONFIG="${SERVE_CONFIG:-deploy/serve_config.yaml}"
METRICS_PORT="${RAY_METRICS_EXPORT_PORT:-8080}"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"

# Serve's REST API (on the dashboard) answers a few seconds after `ray start`: retry until it takes the config.
# $1: the process to stop when it never does.
deploy_when_ready() {
    attempt=1
    until serve deploy "$SERVE_CONFIG"; do
        if [ "$attempt" -ge "${SERVE_DEPLOY_ATTEMPTS:-60}" ]; then
            echo "entrypoint: serve deploy $SERVE_CONFIG failed $attempt times; stopping the Ray head" >&2
            kill -TERM "$1"
            return 1
        fi
        attempt=$((attempt + 1))
        sleep "${SERVE_DEPLOY_RETRY_S:-5}"
    done
    echo "entrypoint: deployed $SERVE_CONFIG"
}

role="${1:-head}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$role" in
head)
    if [ "$RAY_AUTH_MODE" = token ]; then
        ray get-auth-token --generate >/dev/null
    fi
    # In the background, then `exec`: Ray takes this shell's PID (and its signals, for a graceful drain on
    # `docker stop`), and `$$` still names it for the deploy loop.
    deploy_when_ready "$$" &
    exec ray start --head --block --port=6379 --dashboard-host=0.0.0.0 \
        --metrics-export-port="$METRICS_PORT" --disable-usage-stats "$@"
    ;;
worker)
    exec ray start --address="${RAY_HEAD_ADDRESS:-ray-head:6379}" --block \
        --metrics-export-port="$METRICS_PORT" --disable-usage-stats "$@"
    ;;
*)
    exec "$role" "$@"
    ;;
esac
