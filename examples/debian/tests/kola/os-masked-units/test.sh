#!/bin/sh
# The example masks units it has no use for (overlay.d/10cosa-example/etc/systemd/system), among
# them the early loads of loop and dm_mod: each must be masked and not have run, and the kernel
# must still load either module when its control node is first opened. Runs as root in the guest
# (`cosa kola run`, test name ext.config.os-masked-units).
set -eu
fail() { echo "FAIL: $*"; exit 1; }

for u in modprobe@loop.service modprobe@dm_mod.service modprobe@configfs.service sys-kernel-config.mount \
	modprobe@drm.service modprobe@fuse.service dev-hugepages.mount sys-kernel-debug.mount; do
	s=$(systemctl is-enabled "$u" 2>/dev/null || true)
	[ "$s" = masked ] || fail "$u is '$s', expected masked"
	a=$(systemctl is-active "$u" 2>/dev/null || true)
	[ "$a" = inactive ] || fail "$u is '$a' after boot, expected inactive"
done
# loop: /dev/loop-control is a static node (kmod-static-nodes); opening it loads the module.
[ -c /dev/loop-control ] || fail "/dev/loop-control is missing"
dev=$(losetup -f) || fail "losetup -f failed: loop did not load on demand"
grep -q '^loop ' /proc/modules || [ -d /sys/module/loop ] || fail "loop is not loaded after losetup -f"
# dm_mod: the same through /dev/mapper/control.
[ -c /dev/mapper/control ] || fail "/dev/mapper/control is missing"
dd if=/dev/mapper/control of=/dev/null bs=1 count=0 2>/dev/null || true
[ -d /sys/module/dm_mod ] || fail "dm_mod is not loaded after opening /dev/mapper/control"
echo "ok: 8 units masked and inactive; loop ($dev) and dm_mod load on first use"
