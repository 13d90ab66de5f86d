#!/bin/sh
# The example masks units it has no use for (overlay.d/10cosa-example/etc/systemd/system), among
# them the early loads of loop and dm_mod: each must be masked and not have run, and the kernel
# must still load either module when its control node is first opened. Runs as root in the guest
# (`cosa kola run`, test name ext.config.os-masked-units). It also masks the systemd generators it
# has no use for (overlay.d/10cosa-example/etc/systemd/system-generators): they must not run, and
# the ones it keeps (ostree, fstab, getty) must have.
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
# Generators: the kept ones wrote their units at boot ...
[ -f /run/systemd/generator/var.mount ] || fail "ostree-system-generator did not run (no var.mount)"
[ -f /run/systemd/generator/boot.automount ] || fail "systemd-fstab-generator did not run (no boot.automount)"
[ -e /run/systemd/generator/getty.target.wants/serial-getty@ttyS0.service ] || fail "systemd-getty-generator did not run"
# ... and two masked ones, given something to act on, write nothing on a reload.
for g in systemd-sysv-generator systemd-rc-local-generator systemd-gpt-auto-generator systemd-cryptsetup-generator; do
	[ "$(readlink "/etc/systemd/system-generators/$g")" = /dev/null ] || fail "$g is not masked"
done
cleanup() { rm -f /etc/init.d/cosa-probe /etc/rc.local; systemctl daemon-reload; }
trap cleanup EXIT
printf '#!/bin/sh\n### BEGIN INIT INFO\n# Provides: cosa-probe\n# Default-Start: 2 3 4 5\n### END INIT INFO\nexit 0\n' > /etc/init.d/cosa-probe
printf '#!/bin/sh\nexit 0\n' > /etc/rc.local
chmod 755 /etc/init.d/cosa-probe /etc/rc.local
systemctl daemon-reload
[ ! -e /run/systemd/generator.late/cosa-probe.service ] || fail "systemd-sysv-generator ran: it made cosa-probe.service"
[ ! -e /run/systemd/generator/multi-user.target.wants/rc-local.service ] || fail "systemd-rc-local-generator ran: it pulled in rc-local.service"
echo "ok: 8 units masked and inactive; loop ($dev) and dm_mod load on first use; 3 generators ran, sysv and rc-local did not"
