#!/usr/bin/env bash
# Container images built with podman from Debian packages and our own files, for machines that
# cannot pull from Docker Hub (like the CI host; see deploy/README.md, "podman here").
#
#   deploy/images.sh [all|base|haggle|kafka|postgres|prometheus]...   build (cached), then
#                                                                     print NAME=IMAGE lines
#   deploy/images.sh names                                            print them only
#
# base        Debian bookworm with python3 by debootstrap from the mirror apt uses, imported with
#             `podman import` — skipped when the image is already in podman's store
# haggle      deploy/Dockerfile on that base (ARG BASE), the one image of every service
# kafka       Apache Kafka from the Maven Central jars haggle infra uses (deploy/images/kafka)
# postgres    PostgreSQL from Debian's postgresql package (deploy/images/postgres)
# prometheus  Prometheus from Debian's prometheus package (deploy/images/prometheus)
#
# Later runs reuse podman's layer cache: a code change rebuilds the haggle image's last layers
# only. Safe to run concurrently, from any checkout (flock). CONTAINERS_CONF defaults to
# deploy/podman/containers.conf; HAGGLE_IMAGE_BASE overrides the base (e.g.
# python:3.11.13-slim-bookworm where Docker Hub works).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
deploy="$root/deploy"
state="${HAGGLE_STATE_DIR:-$root/.haggle}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$deploy/podman/containers.conf}"

BASE_IMAGE="${HAGGLE_IMAGE_BASE:-localhost/haggle-base:bookworm}"
HAGGLE_REPO=localhost/haggle
HAGGLE_IMAGE=$HAGGLE_REPO:local  # and $HAGGLE_REPO:<inputs digest>, what `names` prints
KEEP_HAGGLE_IMAGES=3
KAFKA_IMAGE=localhost/haggle-kafka:3.9.1
POSTGRES_IMAGE=localhost/haggle-postgres:15
PROMETHEUS_IMAGE=localhost/haggle-prometheus:2.42
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python3-pip,ca-certificates

say() { echo "images.sh: $*" >&2; }

haggle_digest() {
    (cd "$root" && inputs_digest deploy/Dockerfile deploy/Dockerfile.dockerignore \
        deploy/requirements.txt pyproject.toml haggle services)
}

names() {
    # The haggle image by the digest of its inputs: a test uses the code of its own checkout
    # even while another checkout on this machine builds :local from other code.
    local haggle=$HAGGLE_IMAGE
    podman image exists "$BASE_IMAGE" && haggle="$HAGGLE_REPO:$(haggle_digest)"
    printf 'BASE=%s\nHAGGLE=%s\nKAFKA=%s\nPOSTGRES=%s\nPROMETHEUS=%s\n' \
        "$BASE_IMAGE" "$haggle" "$KAFKA_IMAGE" "$POSTGRES_IMAGE" "$PROMETHEUS_IMAGE"
}

# The first Debian mirror apt is configured with (deb822 .sources or one-line .list files).
debian_mirror() {
    local found
    found=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ {print $2} /^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' \
        | grep -E '/debian/?$' | head -n 1 || true)
    echo "${found:-http://deb.debian.org/debian}"
}

# A digest of everything an image is built from (the files given, the base image's id and the
# podman settings), kept as a label: an image whose label matches is not rebuilt at all, which
# skips even podman's cache checks (tens of seconds for the haggle image on loaded machines).
inputs_digest() {  # inputs_digest PATH...
    {
        podman image inspect --format '{{.Id}}' "$BASE_IMAGE"
        find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z \
            | xargs -0 sha256sum
    } | sha256sum | cut -c1-32
}

build() {  # build IMAGE CONTEXT DIGEST [podman build args...]
    local image=$1 context=$2 digest=$3
    shift 3
    local start=$SECONDS
    if [ "$(podman image inspect --format '{{index .Labels "org.haggle.inputs"}}' "$image" 2>/dev/null)" = "$digest" ]; then
        say "$image is up to date"
        return
    fi
    podman build --quiet --network host --format docker --layers --build-arg "BASE=$BASE_IMAGE" \
        --label "org.haggle.inputs=$digest" -t "$image" "$@" "$context" >/dev/null
    say "$image ready in $((SECONDS - start)) s"
}

base() {
    if podman image exists "$BASE_IMAGE"; then
        return
    fi
    [[ "$BASE_IMAGE" == localhost/* ]] || { podman pull "$BASE_IMAGE" >/dev/null; return; }
    command -v debootstrap >/dev/null || { say "needs debootstrap (apt-get install debootstrap)"; exit 1; }
    local mirror rootfs start=$SECONDS
    mirror=$(debian_mirror)
    say "debootstrap $SUITE from $mirror (first time only, about a minute)..."
    mkdir -p "$state"
    rootfs=$(mktemp -d "$state/.rootfs.XXXXXX")
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; exit 1; }
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    say "$BASE_IMAGE imported in $((SECONDS - start)) s"
}

haggle() {
    base
    local secret=()
    # Behind a TLS-inspecting proxy, pip inside the build needs the host's CA bundle.
    local cert="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
    [ -s "$cert" ] && secret=(--secret "id=pip_cert,src=$cert")
    local digest
    digest=$(haggle_digest)
    if ! podman image exists "$HAGGLE_REPO:$digest"; then
        build "$HAGGLE_IMAGE" "$root" "$digest" -f "$deploy/Dockerfile" \
            --ignorefile "$deploy/Dockerfile.dockerignore" "${secret[@]}"
        podman tag "$HAGGLE_IMAGE" "$HAGGLE_REPO:$digest"
    fi
    # Older digests (other code) beyond the newest few go, so the store does not fill up; an
    # image a container still uses stays. (No `image prune`: the untagged images are the layer
    # cache that makes the next build take seconds.)
    podman images --sort created --format '{{.Repository}}:{{.Tag}}' "$HAGGLE_REPO" \
        | grep -vE ':(local|'"$digest"')$' | tail -n +"$KEEP_HAGGLE_IMAGES" \
        | xargs -r podman rmi >/dev/null 2>&1 || true
}

kafka_libs() {
    if [ -n "${HAGGLE_KAFKA_LIBS_DIR:-}" ]; then
        echo "$HAGGLE_KAFKA_LIBS_DIR"
        return
    fi
    # The jars haggle infra fetches from Maven Central on first start.
    "$root/.venv/bin/python" -c 'from haggle.infra import kafka, state
settings = state.Settings.from_env()
kafka.ensure_jars(settings, lambda m: None)
print(settings.kafka_libs_dir)'
}

kafka() {
    base
    local context libs
    libs=$(kafka_libs)
    context="$state/images/kafka"
    rm -rf "$context"
    mkdir -p "$context"
    cp "$deploy"/images/kafka/* "$context"/
    cp -rl "$libs" "$context/libs" 2>/dev/null || cp -r "$libs" "$context/libs"
    build "$KAFKA_IMAGE" "$context" "$(inputs_digest "$context")"
}

postgres() {
    base
    build "$POSTGRES_IMAGE" "$deploy/images/postgres" "$(inputs_digest "$deploy/images/postgres")"
}

prometheus() {
    base
    build "$PROMETHEUS_IMAGE" "$deploy/images/prometheus" "$(inputs_digest "$deploy/images/prometheus")"
}

command -v podman >/dev/null || { say "needs podman (apt-get install podman runc)"; exit 1; }
[ $# -gt 0 ] || set -- all
if [ "$1" = names ]; then
    names
    exit 0
fi
# One lock per machine, not per checkout: podman's image store is shared by every checkout.
exec 9>"${TMPDIR:-/tmp}/haggle-images.lock"
flock 9
for target in "$@"; do
    case "$target" in
        all) haggle; kafka; postgres; prometheus ;;
        base | haggle | kafka | postgres | prometheus) "$target" ;;
        *) say "unknown image '$target' (known: all base haggle kafka postgres prometheus names)"; exit 2 ;;
    esac
done
names
