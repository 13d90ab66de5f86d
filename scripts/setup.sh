#!/usr/bin/env bash
# One-command setup on a fresh Debian 12 machine (as root): system packages, pnpm, npm dependencies,
# a build of every package, `cosa` on PATH. Idempotent: a second run only checks and returns.
# With --example DIR (the README's first command) it then builds the bundled example in DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
EXAMPLE_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --example) EXAMPLE_DIR=$2; shift 2 ;;
    *) echo "usage: $0 [--example WORKDIR]" >&2; exit 2 ;;
  esac
done

# The system packages the project uses. Keep in sync with packages/image/src/_host-packages.ts.
APT_PACKAGES=(
  git ca-certificates curl openssl
  ostree ostree-boot
  supermin qemu-system-x86 qemu-utils linux-image-amd64 ovmf
  fakeroot  # the VM writer stages the deployed sysroot on the host under it (optional)
  mmdebstrap dpkg-dev
  eatmydata  # the Debian composer runs dpkg under its libeatmydata inside mmdebstrap (optional)
  rpm dnf createrepo-c
  sqlite3  # the dnf composer pins the rpmdb's install times (rpmdb.sqlite) for reproducible commits
  gdisk parted xfsprogs e2fsprogs dosfstools mtools
  grub-pc-bin grub-efi-amd64-bin grub2-common
  zstd xz-utils pigz
  nginx-light awscli rclone
  kmod udev cpio rsync procps util-linux busybox-static
  fdisk  # tests only: `fdisk -b 4096 -l` reads 4Kn (metal4k) images
  iproute2  # tests only: the runners test makes its hosts with `ip netns` and veth pairs
)

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh installs system packages: run it as root" >&2
  exit 1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${#missing[@]} system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PNPM_VERSION=$(node -p "require('$HERE/package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  echo "==> installing pnpm $PNPM_VERSION"
  npm i -g "pnpm@$PNPM_VERSION" --allow-scripts=pnpm >/dev/null 2>&1
fi

cd "$HERE"
echo "==> installing npm dependencies"
pnpm install --frozen-lockfile --reporter=silent
# Build only when a package's sources are newer than its dist/ (a re-run stays quick).
stale=0
for p in packages/*/; do
  grep -q '"build"' "$p/package.json" || continue
  if [ ! -f "$p/dist/index.js" ] || [ -n "$(find "$p/src" "$p/package.json" "$p/tsup.config.ts" -newer "$p/dist/index.js" -print -quit)" ]; then
    stale=1
  fi
done
if [ "$stale" = 1 ]; then
  echo "==> building packages"
  pnpm -r --reporter=silent run build >/dev/null
fi
ln -sf "$HERE/packages/cli/bin/cosa.js" /usr/local/bin/cosa
echo "==> cosa is $(command -v cosa)"

if [ -n "$EXAMPLE_DIR" ]; then
  echo "==> building the bundled example in $EXAMPLE_DIR"
  mkdir -p "$EXAMPLE_DIR"
  cd "$EXAMPLE_DIR"
  [ -e src/config ] || cosa init --force "$HERE/examples/debian"
  cosa build
fi
