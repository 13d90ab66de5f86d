#!/bin/sh
# The booted example is the OSTree-based Debian it claims to be. Runs as root in the guest
# (`cosa kola run`, test name ext.config.os-identity).
set -eu
fail() { echo "FAIL: $*"; exit 1; }

[ -e /run/ostree-booted ] || fail "/run/ostree-booted is missing: not booted through OSTree"
. /etc/os-release
[ "${ID:-}" = debian ] || fail "os-release ID is '${ID:-}', expected debian"
[ "${VERSION_ID:-}" = 12 ] || fail "os-release VERSION_ID is '${VERSION_ID:-}', expected 12"
[ "$(hostname)" = cosa-debian ] || fail "hostname is '$(hostname)', expected cosa-debian"
[ "${KOLA_TEST:-}" = ext.config.os-identity ] || fail "KOLA_TEST is '${KOLA_TEST:-}'"
echo "ok: $PRETTY_NAME on OSTree, hostname $(hostname), kernel $(uname -r)"
