#!/usr/bin/env bash
# Build the deployment's images without an image registry, for deploy/compose and its test
# (tests/deploy/test_compose.py):
#   scripts/helixpy-image.sh PYTHON        (needs DOCKER_HOST pointing at a daemon; root)
#
#   helixpy/debian-python:KEY      Debian bookworm (debootstrap from the Debian archive) with
#                                  Python 3.11 and venv: the stand-in for python:3.11-slim.
#                                  Its root filesystem is cached as a tar per machine, keyed
#                                  by a hash of this script, so debootstrap runs once.
#   helixpy/python-offline:KEY2    ... plus a wheelhouse of helixpy's pinned dependencies
#                                  (built on this host by pip, which reaches PyPI) and an
#                                  /etc/pip.conf that installs from it only: builds on it
#                                  need no network.
#   helixpy:local                  deploy/Dockerfile, built with
#                                  --build-arg PYTHON_IMAGE=helixpy/python-offline:KEY2.
#   helixpy/zookeeper-compose:local  deploy/docker/zookeeper/Dockerfile on the Debian base:
#                                  this machine's JRE and ZooKeeper jars, with the official
#                                  image's environment and `zkServer.sh status`.
#
# Images already present are kept (a private dockerd starts empty, and then the cached root
# filesystem makes the rebuild take seconds). Prints the timings of what it did.
# HELIXPY_IMAGE_CACHE overrides the cache directory.
set -euo pipefail
python=${1:-python3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${HELIXPY_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/helixpy-images}
suite=bookworm
mirror=${HELIXPY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv,python-is-python3,ca-certificates
export DOCKER_BUILDKIT=0  # the classic builder: no buildx plugin needed, same everywhere

t0=$SECONDS
say() { echo "helixpy-image: $* ($((SECONDS - t0)) s)" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
# `docker build`, quiet: the classic builder's deprecation notice is noise, its errors not
build() {
  docker build -q --network none "$@" >/dev/null 2>"$stage/build.log" ||
    { grep -v -e DEPRECATED -e 'BuildKit is currently' -e 'environment-variable' \
        "$stage/build.log" >&2; exit 1; }
}
hash_of() { cat "$@" | sha256sum | cut -c1-12; }

stage=$(mktemp -d /tmp/helixpy-image-XXXXXX)
cleanup() {
  # debootstrap mounts /proc and /sys in its target while it runs: never leave one behind
  awk -v s="$stage" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$stage"
}
trap cleanup EXIT

# --- the Debian base: debootstrap once per machine, `docker import` per daemon -------------
# The key: what goes into the root filesystem (bump recipe when the steps below change).
recipe=1
key=$(printf '%s\n' "$recipe" "$suite" "$packages" "$mirror" | sha256sum | cut -c1-12)
base=helixpy/debian-python:$key
tarball=$cache/debian-python-$key.tar
if ! have "$base"; then
  if [ ! -f "$tarball" ]; then
    if ! command -v debootstrap >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    fi
    say "debootstrap $suite ($packages) from $mirror"
    debootstrap --variant=minbase --include="$packages" "$suite" "$stage/rootfs" "$mirror" \
      >"$stage/debootstrap.log" 2>&1 || { tail -20 "$stage/debootstrap.log" >&2; exit 1; }
    # What python:3.11-slim leaves out too: package caches, lists, docs, man pages, locales.
    rm -rf "$stage"/rootfs/var/cache/apt/archives/*.deb "$stage"/rootfs/var/lib/apt/lists/* \
      "$stage"/rootfs/usr/share/doc/* "$stage"/rootfs/usr/share/man/* \
      "$stage"/rootfs/usr/share/locale/* "$stage"/rootfs/tmp/*
    # The host's resolver means nothing in a container: Docker writes its own.
    : >"$stage/rootfs/etc/resolv.conf"
    mkdir -p "$cache"
    rm -f "$cache"/debian-python-*.tar  # an older key's: one base per machine is enough
    # a name of its own, then an atomic rename: two builds at once cannot mix their files
    tar --numeric-owner -C "$stage/rootfs" -cf "$tarball.$$.part" .
    mv "$tarball.$$.part" "$tarball"
    rm -rf "$stage/rootfs"
    say "cached the root filesystem: $tarball ($(du -h "$tarball" | cut -f1))"
  fi
  docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' "$tarball" "$base" >/dev/null
  say "imported $base"
fi

# --- the offline layer: a wheelhouse of the pinned dependencies ----------------------------
key2=$(hash_of "$root/constraints.txt" "$root/pyproject.toml" <(echo "$key"))
offline=helixpy/python-offline:$key2
if ! have "$offline"; then
  wheels=$cache/wheels-$key2
  pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$pyver" != 3.11 ]; then
    echo "helixpy-image: $python is Python $pyver; the wheels must fit the base's 3.11" >&2
    exit 1
  fi
  if [ ! -d "$wheels" ]; then
    # an older key's (not one another build is writing now)
    find "$cache" -maxdepth 1 -name 'wheels-*' ! -name '*.part' -exec rm -rf {} + 2>/dev/null || true
    mkdir -p "$cache"
    # This host's pip reaches PyPI (its certificates and mirrors configured); one inside a
    # build would not. The host's Python is 3.11 like the base's, so the wheels fit.
    "$python" -m pip wheel -q -w "$stage/wheels" -c "$root/constraints.txt" "$root" \
      setuptools wheel 2>"$stage/pip.log" || { tail -20 "$stage/pip.log" >&2; exit 1; }
    rm -f "$stage"/wheels/helixpy-*.whl  # the project itself is built from the sources
    cp -r "$stage/wheels" "$wheels.$$.part"
    rm -rf "$wheels"  # when another build renamed its copy first
    mv "$wheels.$$.part" "$wheels"
    say "built the wheelhouse $wheels ($(ls "$wheels" | wc -l) wheels)"
  fi
  mkdir -p "$stage/offline"
  cp -r "$wheels" "$stage/offline/wheels"
  printf '[global]\nno-index = true\nfind-links = /opt/wheels\n' >"$stage/offline/pip.conf"
  printf 'FROM %s\nCOPY wheels /opt/wheels\nCOPY pip.conf /etc/pip.conf\n' "$base" \
    >"$stage/offline/Dockerfile"
  build -t "$offline" "$stage/offline"
  say "built $offline"
fi

# --- the project's image: deploy/Dockerfile on that base -----------------------------------
# The classic builder reads no Dockerfile.dockerignore: send it exactly the files that one
# lets through. Always built: the sources change, and unchanged layers come from the cache.
tar -C "$root" --exclude=__pycache__ --exclude='*.pyc' -cf "$stage/context.tar" \
  pyproject.toml README.md constraints.txt helixpy deploy/Dockerfile \
  deploy/docker/helixpy-instance-id
build -f deploy/Dockerfile --build-arg "PYTHON_IMAGE=$offline" \
  -t helixpy:local - <"$stage/context.tar"
say "built helixpy:local from deploy/Dockerfile (PYTHON_IMAGE=$offline)"

# --- ZooKeeper for compose: this machine's JRE and jars on the Debian base -----------------
zk=helixpy/zookeeper-compose:local
if ! have "$zk"; then
  java=$(readlink -f "$(command -v java)")
  jhome=$(dirname "$(dirname "$java")")
  classpath=$("$python" -c \
    'from helixpy.testing.zookeeper import find_zookeeper_classpath as f; print(f())')
  ctx=$stage/zk
  mkdir -p "$ctx/root/opt/zookeeper/bin" "$ctx/root$(dirname "$jhome")"
  # Debian links the JRE's conf/ to /etc: follow links (a dangling one is skipped)
  cp -rL "$jhome" "$ctx/root$jhome" 2>/dev/null || true
  IFS=: read -ra jars <<<"$classpath"
  for jar in "${jars[@]}"; do
    mkdir -p "$ctx/root$(dirname "$jar")"
    cp -L "$jar" "$ctx/root$jar"
  done
  src=$root/deploy/docker/zookeeper
  cp "$src/docker-entrypoint.sh" "$src/zkServer.sh" "$ctx/root/opt/zookeeper/bin/"
  cp "$src/log4j.properties" "$ctx/root/opt/zookeeper/"
  echo "$jhome/bin/java" >"$ctx/root/opt/zookeeper/java"
  echo "$classpath" >"$ctx/root/opt/zookeeper/classpath"
  cp "$src/Dockerfile" "$ctx/Dockerfile"
  build --build-arg "BASE_IMAGE=$base" -t "$zk" "$ctx"
  say "built $zk from $jhome and the local ZooKeeper jars"
fi
