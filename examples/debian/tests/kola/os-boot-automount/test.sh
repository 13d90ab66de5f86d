#!/bin/sh
# /boot is mounted on first access, off the path to the login prompt (the tree's fstab:
# nofail,x-systemd.automount), and still there for whoever needs it, ostree included.
# Runs as root in the guest (`cosa kola run`, test name ext.config.os-boot-automount).
set -eu
fail() { echo "FAIL: $*"; exit 1; }

systemctl is-active --quiet boot.automount || fail "boot.automount is not active"
case " $(systemctl show -p Before --value boot.mount) " in
  *" local-fs.target "*) fail "boot.mount is ordered before local-fs.target: the boot waits for /boot" ;;
esac
ls /boot/loader/entries/*.conf >/dev/null 2>&1 || fail "no boot entry under /boot/loader/entries"
fstype=$(findmnt -n -o FSTYPE --target /boot/loader | tail -n 1)
case "$fstype" in ext4|xfs) ;; *) fail "/boot/loader is on '$fstype' after access, not the /boot file system" ;; esac
echo "ok: /boot is an automount ($fstype on access), not on the path to local-fs.target"
