#!/bin/bash
# cosa disk script: deploy an OSTree commit onto a laid-out disk and install GRUB (BIOS + UEFI). The same script runs on the host (direct executor, loop device) and
# inside the supermin appliance (VM executor, virtio disk); only the variables below differ.
#
# Set by the executor:
#   COSA_DISK         the target block device (/dev/loopN on the host, /dev/vdb in the VM)
#   COSA_PART_PREFIX  partition name suffix before the number ("p" for loop devices, "" for vdX)
#   COSA_WORK         a read-write directory with the prepared inputs (grub-bios/)
#   COSA_MNT          an empty directory to mount the new root on
#   COSA_IN_REPO      the input OSTree repo (read-only)
# Set by createDisk:
#   OSTREE_COMMIT OSTREE_REF OSNAME KARGS (space separated) ALEPH_BUILD ALEPH_IMGID
#   COSA_BIOS_BOOT    1 (default) installs the BIOS bootloader too; 0 for 4Kn disks (UEFI only)
# The disk arrives laid out by the host (createDisk's layoutDisk): GPT, the ESP with BOOTX64.EFI
# and an empty ext4 /boot (LABEL=boot); this script makes the xfs / (LABEL=root).
# Outputs in $COSA_WORK: result.env (DEPLOY_PATH, BOOTLOADER, ROOT_USED_MB)
set -euo pipefail
export LC_ALL=C
: "${COSA_DISK:?}" "${COSA_WORK:?}" "${COSA_MNT:?}" "${COSA_IN_REPO:?}" "${OSTREE_COMMIT:?}" "${OSNAME:?}"
PP=${COSA_PART_PREFIX:-}
P1=${COSA_DISK}${PP}1 P2=${COSA_DISK}${PP}2 P3=${COSA_DISK}${PP}3 P4=${COSA_DISK}${PP}4
MNT=$COSA_MNT

T0=$(date +%s%N)
# Progress lines with the elapsed milliseconds, parsed by benchmarks: "cosa-disk: <ms> <step>".
step() { echo "cosa-disk: $(( ($(date +%s%N) - T0) / 1000000 )) $*"; }
cleanup() {
  local rc=$?
  sync || true
  for d in "${BIND_MOUNTS[@]}"; do umount -l "$d" 2>/dev/null || true; done
  for m in "$MNT/boot" "$MNT"; do if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; fi; done
  exit $rc
}
BIND_MOUNTS=()
trap cleanup EXIT
trap 'exit 143' TERM INT

step "attach"
# The host laid the disk out (GPT, ESP, empty ext4 /boot: see layoutDisk). Partition
# nodes appear asynchronously and there may be no udev to wait for: re-read, then poll.
[ -b "$P4" ] || partprobe "$COSA_DISK" 2>/dev/null || blockdev --rereadpt "$COSA_DISK" 2>/dev/null || true
for _ in $(seq 100); do [ -b "$P4" ] && break; sleep 0.1; done
[ -b "$P4" ] || { echo "partition $P4 did not appear within 10 s" >&2; exit 1; }

step "mkfs-root"
mkfs.xfs -q -f -L root -m reflink=1 -m uuid=910678ff-f77e-4a7d-8d53-86f2ac47a823 "$P4"
mkdir -p "$MNT"
# nouuid: the root UUID is fixed (as in the original), so concurrent builds on one host would clash.
mount -o nouuid "$P4" "$MNT"
mkdir -p "$MNT/boot"
mount "$P3" "$MNT/boot"

step "init-fs"
ostree admin init-fs "$MNT"
REPO=$MNT/ostree/repo
# No bootloader integration: ostree writes BLS entries only; the GRUB config is written below.
ostree config --repo="$REPO" set sysroot.bootloader none
ostree admin --sysroot="$MNT" os-init "$OSNAME"
step "pull-local"
ostree --repo="$REPO" pull-local "$COSA_IN_REPO" "$OSTREE_COMMIT"
DEPLOY_REF=$OSTREE_COMMIT
if [ -n "${OSTREE_REF:-}" ]; then
  ostree --repo="$REPO" refs --create="$OSTREE_REF" "$OSTREE_COMMIT"
  DEPLOY_REF=$OSTREE_REF
fi
KARG_ARGS=()
for k in ${KARGS:-}; do KARG_ARGS+=("--karg-append=$k"); done
step "deploy"
ostree admin --sysroot="$MNT" deploy --os="$OSNAME" "${KARG_ARGS[@]}" "$DEPLOY_REF"
DEPLOY=$(ls -d "$MNT/ostree/deploy/$OSNAME/deploy/$OSTREE_COMMIT".*[0-9] | head -1)

# The aleph file: which build, ref and commit this disk was made from.
printf '{"build":"%s","imgid":"%s","ostree-commit":"%s","ref":"%s"}\n' \
  "${ALEPH_BUILD:-}" "${ALEPH_IMGID:-}" "$OSTREE_COMMIT" "${OSTREE_REF:-}" > "$MNT/.coreos-aleph-version.json"

# Bootloader. RPM trees that ship bootupd or grub2 (with Fedora's blscfg) install their own;
# Debian's GRUB has no blscfg, so a static grub.cfg is written from the BLS entry ostree made.
if [ -x "$DEPLOY/usr/bin/bootupctl" ]; then BOOTLOADER=bootupd
elif [ -x "$DEPLOY/usr/sbin/grub2-install" ]; then BOOTLOADER=grub2
else BOOTLOADER=grub; fi
step "bootloader $BOOTLOADER"

chroot_deploy() {
  # Run a tool of the deployed tree with the new physical root at /sysroot.
  for d in dev proc sys; do mount --bind "/$d" "$DEPLOY/$d"; BIND_MOUNTS+=("$DEPLOY/$d"); done
  mount --bind "$MNT" "$DEPLOY/sysroot"; BIND_MOUNTS+=("$DEPLOY/sysroot")
  chroot "$DEPLOY" "$@"
}

case $BOOTLOADER in
  bootupd)
    chroot_deploy bootupctl backend install --src-root=/ --device="$COSA_DISK" /sysroot
    ;;
  grub2)
    if [ "${COSA_BIOS_BOOT:-1}" = 1 ]; then
      chroot_deploy grub2-install --target=i386-pc --boot-directory=/sysroot/boot --modules="part_gpt ext2 blscfg" "$COSA_DISK"
    fi
    mkdir -p "$MNT/boot/grub2"
    cat > "$MNT/boot/grub2/grub.cfg" <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
search --no-floppy --label boot --set=root
blscfg
CFG
    ;;
  grub)
    # core.img and the i386-pc modules were prepared on the host (grub-mkimage); grub-bios-setup
    # only writes boot.img into the MBR and core.img into the BIOS boot partition.
    mkdir -p "$MNT/boot/grub"
    cp -r "$COSA_WORK/grub-bios/x86_64-efi" "$MNT/boot/grub/"
    if [ "${COSA_BIOS_BOOT:-1}" = 1 ]; then
      cp -r "$COSA_WORK/grub-bios/i386-pc" "$MNT/boot/grub/"
      BIOS_SETUP=$(command -v grub-bios-setup || echo /usr/lib/grub/i386-pc/grub-bios-setup)
      "$BIOS_SETUP" --directory="$MNT/boot/grub/i386-pc" "$COSA_DISK"
    fi
    ENTRY=$(ls "$MNT"/boot/loader/entries/*.conf | head -1)
    val() { sed -n "s/^$1 //p" "$ENTRY"; }
    cat > "$MNT/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
search --no-floppy --label boot --set=root
menuentry '$(val title)' {
  linux $(val linux) $(val options)
  initrd $(val initrd)
}
CFG
    ;;
esac

ROOT_USED_MB=$(( $(df -B1 --output=used "$MNT" | tail -1) / 1048576 ))
cat > "$COSA_WORK/result.env" <<RES
DEPLOY_PATH=${DEPLOY#"$MNT"}
BOOTLOADER=$BOOTLOADER
ROOT_USED_MB=$ROOT_USED_MB
RES

step "trim-unmount"
fstrim "$MNT/boot" 2>/dev/null || true
fstrim "$MNT" 2>/dev/null || true
umount "$MNT/boot"
umount "$MNT"
sync
step "done"
