# shellcheck shell=bash
# Sourced by tests/image.sh and tests/apps.sh: a Docker daemon for the test, and leaving the
# machine as it was found.
#
#   docker_up            use the daemon that answers `docker info`; if none does, start dockerd
#                        (root) and remember that this test started it
#   docker_track IMAGE   remove IMAGE at docker_down, or give its tag back to the image that
#                        had it before
#   docker_down          remove the containers named "$docker_prefix*" and the tracked images,
#                        then stop dockerd if docker_up started it (and the docker0 bridge it
#                        created); call it from the caller's EXIT trap
#
# A daemon this test starts runs with `--iptables=false`: published ports then go through
# docker-proxy alone, and no rule is left behind in the host's firewall. Its data root is the
# default /var/lib/docker, emptied of what the test added.

docker_prefix=hcr-test-$$-
docker_pid=""
docker_log=""
docker_bridge_was_there=""
docker_images=()

docker_up() {
  docker info >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || {
    echo "no Docker daemon answers and dockerd is missing: apt-get install docker.io" >&2
    return 1
  }
  ip link show docker0 >/dev/null 2>&1 && docker_bridge_was_there=1
  docker_log=$(mktemp)
  echo "docker: no daemon answers; starting dockerd (log: $docker_log)" >&2
  dockerd --iptables=false >"$docker_log" 2>&1 &
  docker_pid=$!
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 "$docker_pid" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$docker_log" >&2
  echo "docker: dockerd did not answer within 60 s" >&2
  return 1
}

docker_track() {
  local ref=$1 before
  before=$(docker image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
  docker_images+=("$ref=$before")
}

docker_down() {
  local containers entry ref before now
  containers=$(docker ps -aq --filter "name=^$docker_prefix" 2>/dev/null || true)
  # shellcheck disable=SC2086 # a list of container ids
  [ -z "$containers" ] || docker rm -f $containers >/dev/null 2>&1 || true
  for entry in "${docker_images[@]}"; do
    ref=${entry%=*}
    before=${entry##*=}
    now=$(docker image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
    if [ -z "$now" ] || [ "$now" = "$before" ]; then continue; fi
    if [ -n "$before" ] && docker image inspect "$before" >/dev/null 2>&1; then
      docker tag "$before" "$ref"
    else
      docker rmi "$ref" >/dev/null 2>&1 || true
    fi
    docker rmi "$now" >/dev/null 2>&1 || true
  done
  [ -n "$docker_pid" ] || return 0
  kill -TERM "$docker_pid" 2>/dev/null || true
  for _ in $(seq 60); do
    kill -0 "$docker_pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "$docker_pid" 2>/dev/null || true
  wait "$docker_pid" 2>/dev/null || true
  [ -n "$docker_bridge_was_there" ] || ip link delete docker0 2>/dev/null || true
  rm -f "$docker_log"
  docker_pid=""
}
