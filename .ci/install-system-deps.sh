#!/bin/sh
# Install the Debian packages capplan's test suite runs (idempotent; quiet when all are present).
#
#   prometheus                    real Prometheus for the query_range tests (tests/promstack.py)
#   prometheus-redis-exporter     redis_exporter scraped by it
#   prometheus-postgres-exporter  postgres_exporter scraped by it
#   chromium                      HTML/PDF report rendering
#   wrk                           HTTP load generator (load-test parsers, HTTP probe fixtures)
#   redis-tools                   redis-benchmark (traffic for the collector tests)
#   postgresql-15-pg-stat-statements  only if Debian has such a package: on bookworm the
#                                 extension ships inside postgresql-15 (postgresql-contrib)
#
# Services are NOT started by these packages here (policy-rc.d); the tests start their own
# processes on 127.0.0.1.  Usage: sudo .ci/install-system-deps.sh   (exit 0 when all present)
set -eu

# binary-or-file to check  ->  package that provides it
CHECKS="
/usr/bin/prometheus prometheus
/usr/bin/prometheus-redis-exporter prometheus-redis-exporter
/usr/bin/prometheus-postgres-exporter prometheus-postgres-exporter
/usr/bin/chromium chromium
/usr/bin/wrk wrk
/usr/bin/redis-benchmark redis-tools
"
OPTIONAL="postgresql-15-pg-stat-statements"

missing=""
echo "$CHECKS" | {
    while read -r path pkg; do
        [ -n "$path" ] || continue
        if [ ! -e "$path" ]; then
            printf '%s\n' "$pkg"
        fi
    done
} > /tmp/capplan-missing-pkgs.$$
missing=$(tr '\n' ' ' < /tmp/capplan-missing-pkgs.$$)
rm -f /tmp/capplan-missing-pkgs.$$

if ! command -v apt-get >/dev/null 2>&1; then
    if [ -n "${missing% }" ]; then
        echo "install-system-deps: apt-get not found; install these yourself: ${missing}" >&2
        echo "install-system-deps: the tests that need them will fail and say so" >&2
        exit 0
    fi
    exit 0
fi

# Optional packages: only when Debian knows them and they are not installed yet.
for pkg in $OPTIONAL; do
    if apt-cache show "$pkg" >/dev/null 2>&1 && \
       ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
missing=$(echo "$missing" | tr -s ' ' | sed 's/^ //; s/ $//')

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != "0" ]; then
    echo "install-system-deps: missing Debian packages: $missing" >&2
    echo "install-system-deps: run as root:  sudo $0   (or: sudo apt-get install -y $missing)" >&2
    echo "install-system-deps: the tests that need them will fail and say so" >&2
    exit 0
fi

echo "install-system-deps: installing $missing"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run (up to 10 min) instead of failing on the lock.
apt_opts="-o DPkg::Lock::Timeout=600 -y -q --no-install-recommends"
if ! apt-get $apt_opts install $missing; then
    echo "install-system-deps: install failed; refreshing package lists and retrying" >&2
    apt-get -o DPkg::Lock::Timeout=600 -q update
    apt-get $apt_opts install $missing
fi
echo "install-system-deps: done"
