#!/usr/bin/env bash
# Builds the local base image `gitflock/base:bookworm` from Debian packages alone (no container
# registry): debootstrap a minimal Debian bookworm into a temporary directory, add redis-server,
# git, ca-certificates, procps and tini, and `docker import` the tree.
#
#   scripts/build-base-image.sh [--force] [--with-nginx] [--mirror URL]
#
#   --force        rebuild even if the image(s) already exist
#   --with-nginx   also build `gitflock/nginx:bookworm` (the same tree plus nginx-light), the
#                  base of conf/nginx/Dockerfile (the compose profile `nginx`)
#   --mirror URL   the Debian mirror (default $GITFLOCK_DEBIAN_MIRROR or http://deb.debian.org/debian)
#
# Runs unattended as root (debootstrap needs root; debootstrap itself is apt-get installed if
# missing). With internet access to Docker Hub, conf/docker/base.Dockerfile builds the same
# image from debian:bookworm-slim instead.
#
# It also creates conf/docker/cluster.env (the compose cluster's token and the dashboard's
# password) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=gitflock/base:bookworm
NGINX_IMAGE=gitflock/nginx:bookworm
SUITE=bookworm
MIRROR=${GITFLOCK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${GITFLOCK_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PACKAGES=(redis-server git ca-certificates procps)
OPTIONAL_PACKAGES=(tini)
NGINX_PACKAGES=(nginx-light)

force=0
with_nginx=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --with-nginx) with_nginx=1 ;;
    --mirror) MIRROR=${2:?--mirror needs a URL}; shift ;;
    --mirror=*) MIRROR=${1#--mirror=} ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-base-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "build-base-image: $*"; }
die() { echo "build-base-image: error: $*" >&2; exit 1; }

# The compose cluster's shared token: created once, never printed, never committed.
ensure_env_file() {
  local f=conf/docker/cluster.env
  mkdir -p conf/docker
  [ -e "$f" ] && return 0
  local token password redis
  token=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)
  password=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)
  redis=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
  [ ${#token} -ge 32 ] && [ ${#password} -ge 16 ] && [ ${#redis} -ge 24 ] || die "could not generate a token"
  (umask 077 && printf '# Created by scripts/build-base-image.sh. Do not commit this file.\nGITFLOCK_CLUSTER_TOKEN=%s\n# The dashboard login (http://127.0.0.1:8080/).\nGITFLOCK_WEB_PASSWORD=%s\n# Redis asks for this password; the nodes carry it in their URL.\nGITFLOCK_REDIS_PASSWORD=%s\nGITFLOCK_REDIS_URL=redis://:%s@redis:6379/0\n' "$token" "$password" "$redis" "$redis" >"$f")
  log "created $f with a random token, dashboard and Redis passwords"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine (running? permissions?)"
ensure_env_file

build_base=1
build_nginx=$with_nginx
if [ "$force" = 0 ]; then
  if image_exists "$BASE_IMAGE"; then
    log "$BASE_IMAGE exists (use --force to rebuild)"
    build_base=0
  fi
  if [ "$with_nginx" = 1 ] && image_exists "$NGINX_IMAGE"; then
    log "$NGINX_IMAGE exists (use --force to rebuild)"
    build_nginx=0
  fi
fi
if [ "$build_base" = 0 ] && [ "$build_nginx" = 0 ]; then
  exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root: run it as root (e.g. sudo $0)"
export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap (apt-get)"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap debian-archive-keyring >/dev/null
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || apt-get install -y -qq --no-install-recommends debian-archive-keyring >/dev/null

started=$(date +%s)
# Not under /tmp: it may be a small tmpfs, and the tree holds device nodes.
root=$(mktemp -d /var/tmp/gitflock-rootfs.XXXXXX)
chmod 755 "$root" # the root of the image; apt's _apt user must be able to enter it
cleanup() {
  # Unmount anything still mounted inside the tree (deepest first) before removing it, and
  # never cross into another file system while removing.
  if [ -n "${root:-}" ] && [ -d "$root" ]; then
    local m
    for m in $(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r); do
      umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$root"
  fi
  rm -f "${root:-}.log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
# Runs a command with its output kept aside; shows the end of it if the command fails.
quiet() {
  if ! "$@" >"$root.log" 2>&1; then
    tail -n 30 "$root.log" >&2
    die "failed: $*"
  fi
}
apt_in_root() { quiet in_root apt-get -y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef \
  -o Dpkg::Options::=--force-confold "$@"; }

log "debootstrap --variant=minbase $SUITE from $MIRROR into $root"
quiet debootstrap --variant=minbase --components=main --keyring="$keyring" "$SUITE" "$root" "$MIRROR"

# Container conventions (as in Docker's own Debian images): no service starts during package
# installs, no documentation or translations, no apt caches left in layers.
cat >"$root/usr/sbin/policy-rc.d" <<'EOF'
#!/bin/sh
# Inside a container image nothing is started by package installs.
exit 101
EOF
chmod 755 "$root/usr/sbin/policy-rc.d"
cat >"$root/etc/dpkg/dpkg.cfg.d/gitflock-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$root/etc/apt/apt.conf.d/gitflock-container" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
mount -t proc proc "$root/proc"

log "installing ${PACKAGES[*]} (and security updates)"
apt_in_root update
apt_in_root dist-upgrade
apt_in_root install "${PACKAGES[@]}"
for p in "${OPTIONAL_PACKAGES[@]}"; do
  if in_root apt-get install -y -q -o Dpkg::Use-Pty=0 "$p" >"$root.log" 2>&1; then
    log "installed optional $p"
  else
    log "optional $p is not available; the images run without it"
  fi
done
# The compose service runs redis-server as `redis` with its data in /data (a named volume,
# which starts as a copy of this directory, owner included).
install -d -m 0750 "$root/data"
in_root chown redis:redis /data

# Leaves the tree as an image: no caches, lists, logs, host resolver or machine id.
finish_tree() {
  in_root apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/*
  # What debootstrap unpacked before the dpkg excludes existed: docs (copyrights stay), locales.
  find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  find "$root/var/log" -type f -exec truncate -s 0 {} +
  : >"$root/etc/resolv.conf"
  : >"$root/etc/machine-id"
}

import() {
  local image=$1
  shift
  umount "$root/proc"
  finish_tree
  log "importing $image"
  local old
  old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  tar -C "$root" --numeric-owner -c . |
    docker import \
      --change 'ENV LANG=C.UTF-8' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["/bin/bash"]' \
      --change "LABEL org.opencontainers.image.title=$image io.gitflock.image=${image#gitflock/}" \
      "$@" - "$image" >/dev/null
  # A rebuild (--force) leaves the previous image untagged: remove it unless something uses it.
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
  mount -t proc proc "$root/proc"
}

if [ "$build_base" = 1 ]; then
  import "$BASE_IMAGE"
fi
if [ "$build_nginx" = 1 ]; then
  log "installing ${NGINX_PACKAGES[*]}"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  apt_in_root update
  apt_in_root install "${NGINX_PACKAGES[@]}"
  # In a container nginx logs to the container's output.
  ln -sf /dev/stdout "$root/var/log/nginx/access.log"
  ln -sf /dev/stderr "$root/var/log/nginx/error.log"
  rm -f "$root/etc/nginx/sites-enabled/default"
  # (docker import cannot set STOPSIGNAL: conf/nginx/Dockerfile sets SIGQUIT.)
  import "$NGINX_IMAGE" --change 'EXPOSE 80' --change 'CMD ["nginx", "-g", "daemon off;"]'
fi
umount "$root/proc" 2>/dev/null || true

log "done in $(($(date +%s) - started)) s:"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^gitflock/(base|nginx):' | sed 's/^/  /' || true
