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
#   COSA_STAGE        disk (default): the whole job; sysroot: on the host, under fakeroot, without a
#                     disk: deploy into the directory COSA_MNT and write it as a tar into the file
#                     COSA_SYSROOT_TAR (of COSA_SYSROOT_CAPACITY bytes): "COSA-SYSROOT-READY <bytes>"
#                     at offset 0 once complete, the tar at 1 MiB
#   COSA_SYSROOT_TAR  with COSA_STAGE=disk (or as the block input COSA_BLK_SYSROOT): unpack this tar
#                     (made by the sysroot stage) instead of pulling and deploying here (the VM
#                     writer: no checksums and no ostree run in the guest)
#   COSA_HOST_DISK, COSA_HOST_BOOT_OFFSET, COSA_HOST_BOOT_BYTES  with COSA_STAGE=sysroot: the raw disk
#                     file and the byte range of its /boot partition. When the tree boots with
#                     Debian's GRUB onto an ext4 /boot, the stage makes the whole /boot (GRUB's
#                     files and config, the first-boot stamp) offline and writes it there; the
#                     header then ends in " grub" and the guest leaves /boot alone (it only runs
#                     grub-bios-setup).
# Set by createDisk:
#   OSTREE_COMMIT OSTREE_REF OSNAME KARGS (space separated) ALEPH_BUILD ALEPH_IMGID
#   COSA_BIOS_BOOT    1 (default) installs the BIOS bootloader too; 0 for 4Kn disks (UEFI only)
#   BOOTFS ext4 (default: made by the host) | xfs (made here, BOOT_UUID);
#   ROOTFS xfs (default) | ext4 | ext4verity | btrfs, ROOTFS_ARGS (extra mkfs arguments), ROOT_UUID;
#   COMPOSEFS 1: the sysroot repo asks ostree for a composefs image of the deployment;
#   OSTREE_REMOTE (deploy <remote>:<ref>), OSTREE_REMOTE_URL (add the remote to the sysroot repo),
#   OSTREE_REMOTE_GPG_VERIFY (1/0);
#   $COSA_WORK/grub.cfg (/boot's GRUB config) and $COSA_WORK/ignition.firstboot (the stamp);
#   FS_TIME (the commit's time, seconds), BOOT_EXT4_ARGS, BOOT_HASH_SEED: the ext4 /boot is remade
#   offline from the deployed files at the end, so the same commit gives the same bytes; so is an
#   ext4 root (ROOTFS=ext4, ROOT_HASH_SEED). An xfs, ext4verity or btrfs root is written by the kernel.
# The disk arrives laid out by the host (createDisk's layoutDisk): GPT, the ESP with BOOTX64.EFI
# and an empty ext4 /boot (LABEL=boot; with BOOTFS=xfs this script makes /boot); this script makes / (LABEL=root).
# Outputs in $COSA_WORK: result.env (DEPLOY_PATH, BOOTLOADER, ROOT_USED_MB)
set -euo pipefail
# The supermin appliance carries mawk but not the /usr/bin/awk alternatives link.
command -v awk >/dev/null 2>&1 || awk() { mawk "$@"; }
export LC_ALL=C
: "${COSA_WORK:?}" "${COSA_MNT:?}" "${OSTREE_COMMIT:?}" "${OSNAME:?}"
STAGE=${COSA_STAGE:-disk}
[ "$STAGE" = sysroot ] || COSA_SYSROOT_TAR=${COSA_SYSROOT_TAR:-${COSA_BLK_SYSROOT:-}}
[ "$STAGE" = sysroot ] || : "${COSA_DISK:?}"
[ -n "${COSA_SYSROOT_TAR:-}" ] || : "${COSA_IN_REPO:?}"
PP=${COSA_PART_PREFIX:-}
P1=${COSA_DISK:-}${PP}1 P2=${COSA_DISK:-}${PP}2 P3=${COSA_DISK:-}${PP}3 P4=${COSA_DISK:-}${PP}4
MNT=$COSA_MNT

T0=$(date +%s%N)
# Progress lines with the elapsed milliseconds, parsed by benchmarks: "cosa-disk: <ms> <step>".
# The sysroot stage (on the host) names its steps host-<step>.
step() { echo "cosa-disk: $(( ($(date +%s%N) - T0) / 1000000 )) ${STEP_PREFIX:-}$*"; }
[ "$STAGE" = sysroot ] && STEP_PREFIX=host-
cleanup() {
  local rc=$?
  [ "$STAGE" = sysroot ] || [ -n "${NO_FINAL_SYNC:-}" ] || sync || true
  for d in "${BIND_MOUNTS[@]}"; do umount -l "$d" 2>/dev/null || true; done
  for m in "$MNT/boot" "$MNT"; do if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; fi; done
  [ -z "${ONCE_STAGE:-}" ] || rm -rf "$ONCE_STAGE" 2>/dev/null || true
  exit $rc
}
BIND_MOUNTS=()
trap cleanup EXIT

# mkfs_ext4_from_dir IMG SRC TIME -- MKE2FS_ARGS...: an ext4 file system in the (new, sparse)
# image file IMG holding SRC, made offline (mke2fs -d): the same SRC content gives the same bytes.
# Files with mtime 0 (OSTree's objects and their checkouts) keep it, every other time becomes TIME.
# With FS_OFFSET and FS_BYTES set, IMG is a disk image file and the file system is made in that
# byte range of it (mke2fs -E offset=FS_OFFSET, which the caller passes; the same bytes as in a
# file of its own).
mkfs_ext4_from_dir() {
  local dev=$1 src=$2 t=$3; shift 4  # dev: the image file
  local size=() io=$dev
  if [ -n "${FS_OFFSET:-}" ]; then size=("$(( FS_BYTES / 1024 ))k"); io="$dev?offset=$FS_OFFSET"; fi
  # mke2fs takes one -E (the last): every -E given (cosa's, image.yaml's rootfs-args) becomes one
  # list, in order (a later key wins).
  local args=() ext=
  while [ $# -gt 0 ]; do
    if [ "$1" = -E ] && [ $# -gt 1 ]; then ext="${ext:+$ext,}$2"; shift 2; else args+=("$1"); shift; fi
  done
  [ -z "$ext" ] || args+=(-E "$ext")
  find "$src" -newermt @0 -exec touch -h -d "@$t" {} +
  find "$src" ! -newermt @0 -exec touch -h -a -d @0 {} +
  E2FSPROGS_FAKE_TIME=$t mkfs.ext4 -q -F "${args[@]}" -d "$src" "$dev" "${size[@]}"
  # mke2fs copies each file's ctime, which nothing can set: set it to TIME on every used inode.
  dumpe2fs "$io" 2>/dev/null | awk -v t="$t" '
    /^Inodes per group:/ { ipg = $4 }
    /^Group [0-9]+:/ { g = $2 + 0; first = g * ipg + 1; last = first + ipg - 1; next }
    /^  Free inodes:/ {
      sub(/^  Free inodes: */, ""); n = split($0, parts, /, */)
      for (i = first; i <= last; i++) used[i] = 1
      for (p = 1; p <= n; p++) { if (parts[p] == "") continue; m = split(parts[p], r, "-"); lo = r[1] + 0; hi = (m > 1 ? r[2] : r[1]) + 0; for (i = lo; i <= hi; i++) delete used[i] }
      for (i = first; i <= last; i++) if (i in used) { if (i > 1) print "sif <" i "> ctime @" t; delete used[i] }
    }' > "$COSA_WORK/.ctime.debugfs"
  # Directories and symlinks are read after their times were set (find, readlink; there is no
  # noatime mount under fakeroot): their atime is the mtime's rule again, from the source (a
  # no-op on a noatime mount).
  (cd "$src" && find . \( -type d -o -type l \) -printf '%A@ %T@ %P\n') | awk -v t="$t" '{
      a = ($2 + 0 == 0 ? 0 : t); if ($1 + 0 == a) next
      p = $0; sub(/^[^ ]* [^ ]* /, "", p); gsub(/"/, "\\\"", p)
      print "sif \"/" p "\" atime @" a }' >> "$COSA_WORK/.ctime.debugfs"
  E2FSPROGS_FAKE_TIME=$t debugfs -w -f "$COSA_WORK/.ctime.debugfs" "$io" >/dev/null 2>&1
  rm -f "$COSA_WORK/.ctime.debugfs"
}

# part_in_file PART: "FILE OFFSET BYTES" when PART is a partition of a loop device over a disk
# image file (the direct writer), or host-root (the VM writer's host stage: the root's range of
# the disk file), else nothing.
part_in_file() {
  # The VM writer's host stage names the root's range of the disk file itself.
  if [ "$1" = host-root ]; then echo "$COSA_HOST_DISK $COSA_HOST_ROOT_OFFSET $COSA_HOST_ROOT_BYTES"; return 0; fi
  local back start
  back=$(losetup -n -O BACK-FILE "${COSA_DISK:-}" 2>/dev/null | sed 's/ *$//') || return 0
  [ -n "$back" ] && [ -f "$back" ] || return 0
  start=$(cat "/sys/class/block/${1##*/}/start" 2>/dev/null) || return 0
  echo "$back $(( start * 512 )) $(blockdev --getsize64 "$1")"
}

# make_ext4_part PART SRC SEED -- MKE2FS_ARGS...: the partition PART (see part_in_file) becomes an
# ext4 file system holding SRC, made offline (mkfs_ext4_from_dir, TIME=FS_TIME, hash_seed=SEED)
# straight into the disk image file at the partition's offset: no second copy, nothing for a loop
# device to write back. Sets PART_IO, the new file system for debugfs and dumpe2fs.
make_ext4_part() {
  local part=$1 src=$2 seed=$3 file off bytes; shift 4
  read -r file off bytes <<< "$(part_in_file "$part")"
  [ -n "$bytes" ] || { echo "internal: $part is not a range of a disk image file" >&2; exit 1; }
  fallocate -p -o "$off" -l "$bytes" "$file"
  FS_OFFSET=$off FS_BYTES=$bytes mkfs_ext4_from_dir "$file" "$src" "$FS_TIME" -- "$@" -E "hash_seed=$seed" -E "offset=$off"
  PART_IO="$file?offset=$off"
}

# offline_root_fixups DEPLOY_REL: on the root just made by make_ext4_part, what ostree does to a
# new deployment on a mounted root (its directory immutable: mke2fs does not copy inode flags);
# sets ROOT_USED_MB.
offline_root_fixups() {
  local flags
  flags=$(debugfs -R "stat $1" "$PART_IO" 2>/dev/null | sed -n 's/.*Flags: \(0x[0-9a-f]*\).*/\1/p' | head -1)
  debugfs -w -R "sif $1 flags $(printf '0x%x' $(( ${flags:-0} | 0x10 )))" "$PART_IO" >/dev/null 2>&1
  ROOT_USED_MB=$(dumpe2fs -h "$PART_IO" 2>/dev/null | awk -F: '/^Block count/ { n = $2 } /^Free blocks/ { f = $2 } /^Block size/ { b = $2 } END { print int((n - f) * b / 1048576) }')
}

# copy_boot_apart BOOTDIR: ostree hardlinked the kernel and initramfs into BOOTDIR from the
# deployment (one file system while staged); /boot is a file system of its own: copy them apart,
# as ostree copies them onto a /boot of its own (the mode kept, a new mtime: FS_TIME later).
copy_boot_apart() {
  find "$1" -type f -links +1 -exec sh -c 'for f; do cp --preserve=mode "$f" "$f.cosa" && mv "$f.cosa" "$f"; done' sh {} +
}

# bios_setup_from_boot DIR: grub-bios-setup with GRUB's images read from the /boot partition made
# offline (DIR: a mount point), mounted read-only without its journal (nothing is written to it);
# what this kernel cached of the partition before predates that write.
bios_setup_from_boot() {
  mkdir -p "$1"
  blockdev --flushbufs "$P3"
  mount -t ext4 -o ro,noload "$P3" "$1"
  BIND_MOUNTS+=("$1")
  grub_bios_setup "$1/grub/i386-pc"
  umount "$1"
}

# copy_fs_image IMG DEV: writes a file system image onto a partition, old contents included
# (they would differ). Zeroed first when the device allows, so only IMG's data need be written:
# qemu-img reads IMG's data extents only (SEEK_DATA; 1.3 s for a 2.7 GB root image holding 680 MB,
# where dd conv=sparse read every hole as zeros for 11 s); without qemu-img (the VM appliance),
# dd skips the zero blocks it reads. Else every byte is written. No exclusive open: a mount of the
# partition another mount namespace may still hold must not fail the build.
copy_fs_image() {
  if blkdiscard -z -f "$2" 2>/dev/null; then
    if command -v qemu-img >/dev/null; then qemu-img convert -n --target-is-zero -f raw -O raw "$1" "$2" && sync "$2"
    else dd if="$1" of="$2" bs=4M conv=sparse,fsync status=none; fi
  else dd if="$1" of="$2" bs=4M conv=fsync status=none; fi
}
trap 'exit 143' TERM INT

# detect_bootloader: which bootloader the deployment $DEPLOY installs (sets BOOTLOADER). RPM trees
# that ship bootupd or grub2 (with Fedora's blscfg) install their own; Debian's GRUB has no
# blscfg, so a static grub.cfg is written from the BLS entry ostree made.
detect_bootloader() {
  if [ -x "$DEPLOY/usr/bin/bootupctl" ]; then BOOTLOADER=bootupd
  elif [ -x "$DEPLOY/usr/sbin/grub2-install" ]; then BOOTLOADER=grub2
  else BOOTLOADER=grub; fi
}

# grub_files BOOTDIR: Debian GRUB's files in /boot (BOOTDIR holds the deployment's boot files):
# the modules prepared on the host and grub.cfg, whose `blscfg` line becomes ostree's entry.
grub_files() {
  mkdir -p "$1/grub"
  cp -r "$COSA_WORK/grub-bios/x86_64-efi" "$1/grub/"
  if [ "${COSA_BIOS_BOOT:-1}" = 1 ]; then cp -r "$COSA_WORK/grub-bios/i386-pc" "$1/grub/"; fi
  local entry; entry=$(ls "$1"/loader/entries/*.conf | head -1)
  val() { sed -n "s/^$1 //p" "$entry"; }
  printf "menuentry '%s' {\n  linux %s %s\n  initrd %s\n}\n" "$(val title)" "$(val linux)" "$(val options)" "$(val initrd)" > "$COSA_WORK/entry.cfg"
  cp "$COSA_WORK/grub.cfg" "$COSA_WORK/grub.cfg.in"
  grep -qx 'blscfg' "$COSA_WORK/grub.cfg.in" || echo blscfg >> "$COSA_WORK/grub.cfg.in"
  sed -e "/^blscfg\$/{r $COSA_WORK/entry.cfg" -e 'd;}' "$COSA_WORK/grub.cfg.in" > "$1/grub/grub.cfg"
  rm -f "$COSA_WORK/grub.cfg.in"
}

# grub_bios_setup DIR: boot.img into the MBR and core.img (prepared on the host by grub-mkimage)
# into the BIOS boot partition. DIR must lie on a file system of this kernel's block devices
# (grub-bios-setup looks up the device it is on).
grub_bios_setup() {
  local setup; setup=$(command -v grub-bios-setup || echo /usr/lib/grub/i386-pc/grub-bios-setup)
  "$setup" --directory="$1" "$COSA_DISK"
}

# fill_var DEPLOY VAR: what systemd-tmpfiles' `C` lines (copy) would put into the new stateroot's
# /var on the first boot, done now: the commit ships /var empty and its tmpfiles.d copy the state
# kept under /usr (dpkg's, debconf's: /usr/share/factory/var) back, which costs the first boot
# (every `cosa run`: -snapshot) seconds of guest CPU on the way to the login prompt. The same rules
# as tmpfiles: per path, the first file (by name; /etc over /usr/lib) wins; a path that exists is
# left alone unless it is an empty directory (merged into); lines with specifiers or globs are
# left to the boot, as is every other line type (`d`, `L`, …: cheap). Sources under /usr only (the
# deployment's, read-only). Copies keep modes, owners and times (an OSTree checkout's mtime 0) but
# not hard links (identical files share one object in the repo; in /var they must not).
fill_var() {
  local deploy=$1 var=$2 f name path src rel
  [ -d "$deploy/usr/share/factory" ] || return 0
  local files=()
  for name in $( { ls "$deploy/usr/lib/tmpfiles.d" "$deploy/etc/tmpfiles.d" 2>/dev/null || true; } | grep '\.conf$' | sort -u); do
    f=$deploy/etc/tmpfiles.d/$name
    [ -e "$f" ] || [ -L "$f" ] || f=$deploy/usr/lib/tmpfiles.d/$name
    [ -f "$f" ] && files+=("$f")  # not a mask (a link to /dev/null)
  done
  [ ${#files[@]} -gt 0 ] || return 0
  # A line that creates something claims its path: a later one of that kind is ignored.
  awk '$1 ~ /^[fFwdDevqQpLcbC][-!+=~^]*$/ && $2 ~ /^\/var\// && !($2 in seen) {
         seen[$2] = 1; if ($1 !~ /^C/) next
         src = ($7 == "" || $7 == "-") ? "/usr/share/factory" $2 : $7
         if ($2 src !~ /[%*?[]/ && src ~ /^\/usr\//) print $2, src }' "${files[@]}" | sort |
  while read -r path src; do
    rel=${path#/var/}
    [ -e "$deploy$src" ] || continue
    if [ -e "$var/$rel" ] || [ -L "$var/$rel" ]; then
      [ -d "$var/$rel" ] && [ -d "$deploy$src" ] && [ -z "$(ls -A "$var/$rel")" ] || continue
      cp -a --no-preserve=links "$deploy$src/." "$var/$rel/"
    else
      # Missing parents as the factory has them (mode, owner), as tmpfiles' `d` lines make them.
      if [ "$src" = "/usr/share/factory$path" ]; then
        (cd "$deploy/usr/share/factory/var" && cp -a --no-preserve=links --parents "$rel" "$var/")
      else
        mkdir -p "$(dirname "$var/$rel")"
        cp -a --no-preserve=links "$deploy$src" "$var/$rel"
      fi
    fi
  done
}

# deploy_sysroot: the ostree part, into the (mounted or staged) sysroot $MNT: init-fs, pull-local,
# deploy, then the deployment's fixes and the aleph file. Sets DEPLOY.
deploy_sysroot() {
  step "init-fs"
  ostree admin init-fs "$MNT"
  REPO=$MNT/ostree/repo
  # No bootloader integration: ostree writes BLS entries only; the GRUB config is written below.
  ostree config --repo="$REPO" set sysroot.bootloader none
  # The disk is synced and unmounted at the end: per-object fsyncs while pulling and deploying are
  # wasted work (emulated, in the VM). Unset again after the deploy: the image's repo keeps the default.
  ostree config --repo="$REPO" set core.fsync false
  if [ "${COMPOSEFS:-0}" = 1 ]; then ostree config --repo="$REPO" set ex-integrity.composefs true
  elif [ "${ROOTFS:-xfs}" = ext4verity ]; then ostree config --repo="$REPO" set ex-fsverity.required true; fi
  ostree admin --sysroot="$MNT" os-init "$OSNAME"
  step "pull-local"
  if [ -n "${COSA_SYSROOT_LISTING:-}" ]; then
    # Under fakeroot, which hides the source's user.ostreemeta: copy the objects with the metadata
    # of the commit's listing instead (no checksums; see import-bare.pl).
    perl "${COSA_IMPORT_BARE:?}" "$COSA_IN_REPO" "$REPO" "$OSTREE_COMMIT" "$COSA_SYSROOT_LISTING"
  else
    ostree --repo="$REPO" pull-local "$COSA_IN_REPO" "$OSTREE_COMMIT"
  fi
  DEPLOY_REF=$OSTREE_COMMIT
  if [ -n "${OSTREE_REF:-}" ]; then
    # With a remote the ref is <remote>:<ref>: the origin's refspec, what an upgrade pulls.
    DEPLOY_REF=${OSTREE_REMOTE:+$OSTREE_REMOTE:}$OSTREE_REF
    ostree --repo="$REPO" refs --create="$DEPLOY_REF" "$OSTREE_COMMIT"
  fi
  if [ -n "${OSTREE_REMOTE_URL:-}" ]; then
    GPG_OPT=--no-gpg-verify
    [ "${OSTREE_REMOTE_GPG_VERIFY:-0}" = 1 ] && GPG_OPT=--set=gpg-verify=true
    ostree remote add --repo="$REPO" "$GPG_OPT" "${OSTREE_REMOTE:?}" "$OSTREE_REMOTE_URL"
  fi
  KARG_ARGS=()
  for k in ${KARGS:-}; do KARG_ARGS+=("--karg-append=$k"); done
  step "deploy"
  ostree admin --sysroot="$MNT" deploy --os="$OSNAME" "${KARG_ARGS[@]}" "$DEPLOY_REF"
  ostree config --repo="$REPO" unset core.fsync
  DEPLOY=$(ls -d "$MNT/ostree/deploy/$OSNAME/deploy/$OSTREE_COMMIT".*[0-9] | head -1)
  if [ "${COMPOSEFS:-0}" = 1 ] && [ ! -e "$DEPLOY/.ostree.cfs" ]; then
    echo "composefs: ostree wrote no composefs image (.ostree.cfs) for the deployment" >&2; exit 1
  fi
  # A tree whose fstab mounts /boot as ext4 gets the file system this disk has (a new file: the
  # deployment's /etc is a copy, but never write through a possible hardlink).
  if [ "${BOOTFS:-ext4}" != ext4 ] && [ -f "$DEPLOY/etc/fstab" ]; then
    sed -E "s@^([^#[:space:]]+[[:space:]]+/boot[[:space:]]+)ext4([[:space:]])@\\1$BOOTFS\\2@" "$DEPLOY/etc/fstab" > "$DEPLOY/etc/.fstab.cosa"
    mv "$DEPLOY/etc/.fstab.cosa" "$DEPLOY/etc/fstab"
  fi

  step "fill-var"
  fill_var "$DEPLOY" "$MNT/ostree/deploy/$OSNAME/var"

  # The aleph file: which build, ref and commit this disk was made from.
  printf '{"build":"%s","imgid":"%s","ostree-commit":"%s","ref":"%s"}\n' \
    "${ALEPH_BUILD:-}" "${ALEPH_IMGID:-}" "$OSTREE_COMMIT" "${OSTREE_REF:-}" > "$MNT/.coreos-aleph-version.json"
}

if [ "$STAGE" = sysroot ]; then
  # On the host (under fakeroot, which records the owners and modes ostree sets): the deployed
  # sysroot as one tar, /boot's files included. ostree hardlinks the kernel into /boot when both
  # are on one file system (they are here, not on the disk): copy them apart, or the tar would
  # link across the two file systems it is unpacked onto.
  mkdir -p "$MNT/boot"
  deploy_sysroot
  # ostree pull-local writes the metadata objects (commit, dirtree, dirmeta) now; the copy above
  # kept the source's times: give them the time of the copy, as the direct writer's have.
  [ -z "${COSA_SYSROOT_LISTING:-}" ] || find "$MNT/ostree/repo/objects" -type f ! -name '*.file' -exec touch -h {} +
  copy_boot_apart "$MNT/boot"
  detect_bootloader
  HOST_BOOT=-
  if [ "$BOOTLOADER" = grub ] && [ "${BOOTFS:-ext4}" = ext4 ] && [ -n "${FS_TIME:-}" ] && [ -n "${COSA_HOST_DISK:-}" ]; then
    # /boot whole, offline, as the disk stage below would remake it, written into the disk's
    # /boot partition (a plain file: the guest never touches that range).
    step "boot"
    grub_files "$MNT/boot"
    cp "$COSA_WORK/ignition.firstboot" "$MNT/boot/ignition.firstboot"
    BOOT_IMG=$COSA_SYSROOT_TAR.boot
    truncate -s "${COSA_HOST_BOOT_BYTES:?}" "$BOOT_IMG"
    read -r -a BOOT_ARGS <<< "${BOOT_EXT4_ARGS:-}"
    mkfs_ext4_from_dir "$BOOT_IMG" "$MNT/boot" "$FS_TIME" -- "${BOOT_ARGS[@]}" -L boot -U "${BOOT_UUID:?}" -E "hash_seed=${BOOT_HASH_SEED:?}"
    # The partition's old bytes (layoutDisk's empty ext4) become a hole, then the image's data goes
    # in; where the file system cannot punch holes, every byte is written.
    SPARSE=
    fallocate -p -o "${COSA_HOST_BOOT_OFFSET:?}" -l "$COSA_HOST_BOOT_BYTES" "$COSA_HOST_DISK" 2>/dev/null && SPARSE=sparse,
    dd if="$BOOT_IMG" of="$COSA_HOST_DISK" bs=1M oflag=seek_bytes seek="$COSA_HOST_BOOT_OFFSET" conv=${SPARSE}notrunc status=none
    rm -f "$BOOT_IMG"
    HOST_BOOT=$BOOTLOADER
  fi
  HOST_ROOT=-
  if [ "$HOST_BOOT" = grub ] && [ "${ROOTFS:-xfs}" = ext4 ] && [ -n "${COSA_HOST_ROOT_OFFSET:-}" ] &&
     fallocate -p -o "$COSA_HOST_ROOT_OFFSET" -l "${COSA_HOST_ROOT_BYTES:?}" "$COSA_HOST_DISK" 2>/dev/null; then
    # An ext4 root too, offline, as the direct writer makes it (fakeroot gives mke2fs the owners
    # and modes ostree set), written into the disk file's root partition: the guest then has
    # nothing to unpack and only installs the BIOS bootloader.
    step "root"
    find "$MNT/boot" -mindepth 1 -delete
    read -r -a MKFS_ARGS <<< "${ROOTFS_ARGS:-}"
    make_ext4_part host-root "$MNT" "${ROOT_HASH_SEED:?}" -- -L root -U "${ROOT_UUID:-910678ff-f77e-4a7d-8d53-86f2ac47a823}" "${MKFS_ARGS[@]}"
    offline_root_fixups "${DEPLOY#"$MNT"}"
    HOST_ROOT="root ${DEPLOY#"$MNT"} $ROOT_USED_MB"
    printf 'COSA-SYSROOT-READY 0 %s %s\n' "$HOST_BOOT" "$HOST_ROOT" | dd of="$COSA_SYSROOT_TAR" conv=notrunc status=none
    step "done"
    exit 0
  fi
  # The block input: the tar at 1 MiB, then (last) its header at 0, which the guest waits for.
  step "tar"
  TOTALS=$COSA_SYSROOT_TAR.totals
  EXCLUDE=(); [ "$HOST_BOOT" = - ] || EXCLUDE=(--exclude='./boot/*')
  tar -C "$MNT" --numeric-owner --xattrs --xattrs-include='*' "${EXCLUDE[@]}" --totals -cf - . 2>"$TOTALS" |
    dd of="${COSA_SYSROOT_TAR:?}" bs=1M oflag=seek_bytes seek=1048576 conv=notrunc status=none || { cat "$TOTALS" >&2; exit 1; }
  BYTES=$(sed -n 's/^Total bytes written: \([0-9]*\).*/\1/p' "$TOTALS")
  rm -f "$TOTALS"
  if [ -z "$BYTES" ] || [ $(( 1048576 + BYTES )) -gt "${COSA_SYSROOT_CAPACITY:?}" ]; then
    echo "the sysroot tar (${BYTES:-?} bytes) does not fit its block input (${COSA_SYSROOT_CAPACITY} bytes)" >&2; exit 1
  fi
  printf 'COSA-SYSROOT-READY %s %s\n' "$BYTES" "$HOST_BOOT" | dd of="$COSA_SYSROOT_TAR" conv=notrunc status=none
  step "done"
  exit 0
fi

step "attach"
# The host laid the disk out (GPT, ESP, empty ext4 /boot: see layoutDisk). Partition
# nodes appear asynchronously and there may be no udev to wait for: re-read, then poll.
[ -b "$P4" ] || partprobe "$COSA_DISK" 2>/dev/null || blockdev --rereadpt "$COSA_DISK" 2>/dev/null || true
for _ in $(seq 100); do [ -b "$P4" ] && break; sleep 0.1; done
[ -b "$P4" ] || { echo "partition $P4 did not appear within 10 s" >&2; exit 1; }

# commit_bootloader_is_grub: whether the commit boots with Debian's GRUB (see detect_bootloader),
# read from the input repo before anything is deployed. A superset of detect_bootloader's paths
# (/usr/sbin may be a link to bin: ostree ls does not follow it, /usr/bin is asked too), so "grub"
# here is "grub" there.
commit_bootloader_is_grub() {
  local f
  for f in /usr/bin/bootupctl /usr/sbin/grub2-install /usr/bin/grub2-install; do
    ! ostree --repo="$COSA_IN_REPO" ls "$OSTREE_COMMIT" "$f" >/dev/null 2>&1 || return 1
  done
}

# An ext4 root and /boot on a Debian GRUB tree: deployed once, into a directory here, and both file
# systems made offline from it (mke2fs -d), so the same commit gives the same bytes without the
# kernel writing the root first (that first write and its unmount cost seconds on every build).
# The direct writer only (a loop device over a disk file: the VM's guest has no such file); not
# for ext4verity, composefs or RPM bootloaders (installed by the tree's own tools against a
# mounted /boot): those keep the mounted path below.
if [ -z "${COSA_SYSROOT_TAR:-}" ] && [ "${ROOTFS:-xfs}" = ext4 ] && [ "${BOOTFS:-ext4}" = ext4 ] &&
   [ -n "${FS_TIME:-}" ] && [ "${COMPOSEFS:-0}" != 1 ] && [ -n "$(part_in_file "$P4")" ] && commit_bootloader_is_grub; then
  step "stage-root"
  # Staged under a noatime mount of its own: reading the files (find, mke2fs -d) must not change
  # the times they are copied with, as on the mounted root (see ROOT_MOUNT_OPTS).
  ONCE_STAGE=$COSA_WORK/.stage
  rm -rf "$ONCE_STAGE"
  mkdir -p "$ONCE_STAGE"
  mount --bind "$ONCE_STAGE" "$ONCE_STAGE"
  BIND_MOUNTS+=("$ONCE_STAGE")
  mount -o remount,bind,noatime "$ONCE_STAGE"
  MNT=$ONCE_STAGE/sysroot
  mkdir -p "$MNT/boot"
  # The deployment directory stays mutable here (the host's file system); the flag is set in the
  # new file system below, as ostree sets it on a mounted root.
  export OSTREE_SYSROOT_DEBUG=mutable-deployments
  deploy_sysroot
  unset OSTREE_SYSROOT_DEBUG
  detect_bootloader
  [ "$BOOTLOADER" = grub ] || { echo "internal: the commit's bootloader is $BOOTLOADER, not grub" >&2; exit 1; }
  step "bootloader $BOOTLOADER"
  copy_boot_apart "$MNT/boot"
  grub_files "$MNT/boot"
  cp "$COSA_WORK/ignition.firstboot" "$MNT/boot/ignition.firstboot"
  BOOT_STAGE=$ONCE_STAGE/boot
  mv "$MNT/boot" "$BOOT_STAGE"
  mkdir -m 0755 "$MNT/boot"

  step "mkfs-boot"
  read -r -a BOOT_ARGS <<< "${BOOT_EXT4_ARGS:-}"
  make_ext4_part "$P3" "$BOOT_STAGE" "${BOOT_HASH_SEED:?}" -- "${BOOT_ARGS[@]}" -L boot -U "${BOOT_UUID:?}"
  rm -rf "$BOOT_STAGE"
  [ "${COSA_BIOS_BOOT:-1}" != 1 ] || bios_setup_from_boot "$ONCE_STAGE/boot-ro"
  # What went through the loop device (the MBR, the BIOS boot partition) reaches the image file
  # now, before the root is written into that file beside it.
  sync "$COSA_DISK"

  step "mkfs-root-offline"
  read -r -a MKFS_ARGS <<< "${ROOTFS_ARGS:-}"
  make_ext4_part "$P4" "$MNT" "${ROOT_HASH_SEED:?}" -- -L root -U "${ROOT_UUID:-910678ff-f77e-4a7d-8d53-86f2ac47a823}" "${MKFS_ARGS[@]}"
  offline_root_fixups "${DEPLOY#"$MNT"}"
  step "clean-stage"
  cat > "$COSA_WORK/result.env" <<RES
DEPLOY_PATH=${DEPLOY#"$MNT"}
BOOTLOADER=$BOOTLOADER
ROOT_USED_MB=$ROOT_USED_MB
RES
  # The stage's repo and deployment (hardlinks of each other), removed side by side.
  rm -rf "$MNT/ostree/repo" & rm -rf "$MNT/ostree/deploy" & wait
  rm -rf "$MNT"
  umount "$ONCE_STAGE"
  rm -rf "$ONCE_STAGE"
  ONCE_STAGE= NO_FINAL_SYNC=1
  # No sync: the loop device has nothing left to write (see above); the root is in the image
  # file's page cache, which is what the host reads next.
  step "done"
  exit 0
fi

# wait_sysroot: the host stages the sysroot while this VM boots: wait for its header (read past
# the page cache: the kernel read the device's first sectors at boot, before the host wrote them).
# Sets HEAD, BYTES, HOST_BOOT, HOST_ROOT (root DEPLOY_PATH USED_MB when the host wrote the root).
wait_sysroot() {
  step "wait-sysroot"
  DIRECT=; [ -b "$COSA_SYSROOT_TAR" ] && DIRECT=,direct
  HEAD=
  for _ in $(seq 12000); do
    HEAD=$(dd if="$COSA_SYSROOT_TAR" bs=512 count=1 iflag=fullblock$DIRECT status=none | tr -d '\0' | sed -n 1p)
    case $HEAD in COSA-SYSROOT-*) break ;; esac
    sleep 0.1
  done
  case $HEAD in
    COSA-SYSROOT-READY\ *) read -r _ BYTES HOST_BOOT HOST_ROOT <<< "$HEAD"; HOST_BOOT=${HOST_BOOT:--} HOST_ROOT=${HOST_ROOT:--} ;;
    COSA-SYSROOT-FAILED*) echo "the host failed to stage the sysroot" >&2; exit 1 ;;
    *) echo "the staged sysroot did not arrive within 20 minutes" >&2; exit 1 ;;
  esac
}

HEAD= HOST_BOOT=- HOST_ROOT=-
if [ -n "${COSA_SYSROOT_TAR:-}" ] && [ "${ROOTFS:-xfs}" = ext4 ] && [ "${BOOTFS:-ext4}" = ext4 ] && [ -n "${FS_TIME:-}" ]; then
  # The host may write the whole ext4 root (see the sysroot stage): ask before making one here.
  wait_sysroot
  if [ "${HOST_ROOT%% *}" = root ]; then
    read -r _ DEPLOY_REL USED <<< "$HOST_ROOT"
    step "bootloader grub"
    # The host made /boot: GRUB's images are read from it.
    [ "${COSA_BIOS_BOOT:-1}" != 1 ] || bios_setup_from_boot "${COSA_SCRATCH:-$COSA_WORK}/.boot-ro"
    cat > "$COSA_WORK/result.env" <<RES
DEPLOY_PATH=$DEPLOY_REL
BOOTLOADER=grub
ROOT_USED_MB=$USED
RES
    sync
    step "done"
    exit 0
  fi
fi

step "mkfs-root"
ROOT_UUID=${ROOT_UUID:-910678ff-f77e-4a7d-8d53-86f2ac47a823}
read -r -a MKFS_ARGS <<< "${ROOTFS_ARGS:-}"
ROOT_MOUNT_OPTS=()
case ${ROOTFS:-xfs} in
  xfs)
    mkfs.xfs -q -f -L root -m reflink=1 -m uuid="$ROOT_UUID" "${MKFS_ARGS[@]}" "$P4"
    # nouuid: the root UUID is fixed (as in the original), so concurrent builds on one host would clash.
    ROOT_MOUNT_OPTS=(-o nouuid) ;;
  ext4) mkfs.ext4 -q -F -L root -U "$ROOT_UUID" "${MKFS_ARGS[@]}" "$P4" ;;
  ext4verity) mkfs.ext4 -q -F -b 4096 -O verity -L root -U "$ROOT_UUID" "${MKFS_ARGS[@]}" "$P4" ;;
  btrfs) mkfs.btrfs -q -f -L root -U "$ROOT_UUID" "${MKFS_ARGS[@]}" "$P4" ;;
  *) echo "unknown ROOTFS: $ROOTFS" >&2; exit 1 ;;
esac
BOOT_MOUNT_OPTS=()
if [ "${BOOTFS:-ext4}" = xfs ]; then
  mkfs.xfs -q -f -L boot -m uuid="${BOOT_UUID:?}" "$P3"
  BOOT_MOUNT_OPTS=(-o nouuid)
fi
mkdir -p "$MNT"
# noatime: reading the files (cp, mke2fs -d below) must not change the times they are copied with.
ROOT_MOUNT_OPTS=(-o "noatime${ROOT_MOUNT_OPTS[1]:+,${ROOT_MOUNT_OPTS[1]}}")
mount "${ROOT_MOUNT_OPTS[@]}" "$P4" "$MNT"
mount_boot() { mkdir -p "$MNT/boot"; mount "${BOOT_MOUNT_OPTS[@]}" "$P3" "$MNT/boot"; }
# HOST_BOOT: the bootloader whose /boot the host's sysroot stage already wrote, or - (this script does).
[ -n "${COSA_SYSROOT_TAR:-}" ] || mount_boot

if [ -n "${COSA_SYSROOT_TAR:-}" ]; then
  [ -n "${HEAD:-}" ] || wait_sysroot
  # The host wrote /boot (and the tar holds only the empty mount point): leave the partition alone.
  [ "$HOST_BOOT" != - ] || mount_boot
  step "unpack"
  UNTAR=(tar -C "$MNT" --numeric-owner --xattrs --xattrs-include='*')
  if [ -n "$DIRECT" ]; then
    # Straight from the device, no pipe between (one emulated copy less): drop the pages the boot-time
    # partition scan cached, seek the shared descriptor to the tar (count=0: dd only skips), and
    # tar reads 1 MiB records up to its end-of-archive blocks.
    blockdev --flushbufs "$COSA_SYSROOT_TAR"
    { dd bs=1M skip=1 count=0 status=none; "${UNTAR[@]}" -b 2048 -xpf -; } < "$COSA_SYSROOT_TAR"
  else
    # -i: read the archive to its end (past the end-of-archive blocks), so dd never writes into a closed pipe.
    dd if="$COSA_SYSROOT_TAR" bs=1M iflag=skip_bytes,count_bytes$DIRECT skip=1048576 count="$BYTES" status=none |
      "${UNTAR[@]}" -i -xpf -
  fi
  DEPLOY=$(ls -d "$MNT/ostree/deploy/$OSNAME/deploy/$OSTREE_COMMIT".*[0-9] | head -1)
  # What ostree does to a new deployment and fakeroot cannot: make its directory immutable.
  chattr +i "$DEPLOY" 2>/dev/null || true
else
  deploy_sysroot
fi

# Bootloader (see detect_bootloader).
detect_bootloader
step "bootloader $BOOTLOADER"

chroot_deploy() {
  # Run a tool of the deployed tree with the new physical root at /sysroot.
  for d in dev proc sys; do mount --bind "/$d" "$DEPLOY/$d"; BIND_MOUNTS+=("$DEPLOY/$d"); done
  mount --bind "$MNT" "$DEPLOY/sysroot"; BIND_MOUNTS+=("$DEPLOY/sysroot")
  chroot "$DEPLOY" "$@"
}

if [ "$HOST_BOOT" != - ]; then
  # /boot is written (GRUB's files included); only the MBR and the BIOS boot partition remain.
  # grub-bios-setup wants its directory on a block device it knows: a copy of the two images on the root.
  if [ "${COSA_BIOS_BOOT:-1}" = 1 ]; then
    mkdir "$MNT/.cosa-grub"
    cp "$COSA_WORK/grub-bios/i386-pc/boot.img" "$COSA_WORK/grub-bios/i386-pc/core.img" "$MNT/.cosa-grub/"
    grub_bios_setup "$MNT/.cosa-grub"
    rm -rf "$MNT/.cosa-grub"
  fi
else case $BOOTLOADER in
  bootupd)
    chroot_deploy bootupctl backend install --src-root=/ --device="$COSA_DISK" /sysroot
    mkdir -p "$MNT/boot/grub2"
    cp "$COSA_WORK/grub.cfg" "$MNT/boot/grub2/grub.cfg"
    ;;
  grub2)
    if [ "${COSA_BIOS_BOOT:-1}" = 1 ]; then
      chroot_deploy grub2-install --target=i386-pc --boot-directory=/sysroot/boot --modules="part_gpt ext2 blscfg" "$COSA_DISK"
    fi
    mkdir -p "$MNT/boot/grub2"
    cp "$COSA_WORK/grub.cfg" "$MNT/boot/grub2/grub.cfg"
    ;;
  grub)
    # core.img and the i386-pc modules were prepared on the host (grub-mkimage); grub-bios-setup
    # only writes boot.img into the MBR and core.img into the BIOS boot partition.
    grub_files "$MNT/boot"
    if [ "${COSA_BIOS_BOOT:-1}" = 1 ]; then grub_bios_setup "$MNT/boot/grub/i386-pc"; fi
    ;;
esac
# Ignition runs on first boot while this stamp exists (the OS removes it afterwards).
cp "$COSA_WORK/ignition.firstboot" "$MNT/boot/ignition.firstboot"
fi

ROOT_USED_MB=$(( $(df -B1 --output=used "$MNT" | tail -1) / 1048576 ))
cat > "$COSA_WORK/result.env" <<RES
DEPLOY_PATH=${DEPLOY#"$MNT"}
BOOTLOADER=$BOOTLOADER
ROOT_USED_MB=$ROOT_USED_MB
RES

if [ "${BOOTFS:-ext4}" = ext4 ] && [ -n "${FS_TIME:-}" ] && [ "$HOST_BOOT" = - ]; then
  # The kernel wrote /boot with the time of day, in an order and with a journal of its own: copy
  # the files out (onto the root) and make the file system again offline from them.
  step "mkfs-boot"
  STAGE=$MNT/.cosa-boot
  mkdir "$STAGE"
  cp -a "$MNT/boot/." "$STAGE/"
  rm -rf "$STAGE/lost+found"
  umount "$MNT/boot"
  read -r -a BOOT_ARGS <<< "${BOOT_EXT4_ARGS:-}"
  # COSA_SCRATCH: a local scratch directory when COSA_WORK is slow to write (9p in the VM: /tmp, a tmpfs).
  BOOT_IMG=${COSA_SCRATCH:-$COSA_WORK}/.boot.ext4
  truncate -s "$(blockdev --getsize64 "$P3")" "$BOOT_IMG"
  mkfs_ext4_from_dir "$BOOT_IMG" "$STAGE" "$FS_TIME" -- "${BOOT_ARGS[@]}" -L boot -U "${BOOT_UUID:?}" -E "hash_seed=${BOOT_HASH_SEED:?}"
  copy_fs_image "$BOOT_IMG" "$P3"
  rm -rf "$STAGE" "$BOOT_IMG"
fi

step "trim-unmount"
if mountpoint -q "$MNT/boot"; then fstrim "$MNT/boot" 2>/dev/null || true; umount "$MNT/boot"; fi
if [ "${ROOTFS:-xfs}" = ext4 ] && [ -n "${FS_TIME:-}" ]; then
  # An ext4 root is remade offline the same way, into an image file beside the inputs (mke2fs
  # cannot read and write one device), then copied onto the partition.
  step "mkfs-root-offline"
  ROOT_IMG=$COSA_WORK/.root.ext4
  truncate -s "$(blockdev --getsize64 "$P4")" "$ROOT_IMG"
  # ostree makes each deployment directory immutable; mke2fs -d does not copy inode flags, and
  # its times cannot be set while it is: clear it here, set it again in the new file system.
  IMMUTABLE=()
  for d in "$MNT"/ostree/deploy/*/deploy/*; do
    [ -d "$d" ] && lsattr -d "$d" 2>/dev/null | awk '{ exit !($1 ~ /i/) }' && { chattr -i "$d"; IMMUTABLE+=("${d#"$MNT"}"); }
  done
  mkfs_ext4_from_dir "$ROOT_IMG" "$MNT" "$FS_TIME" -- -L root -U "$ROOT_UUID" -E "hash_seed=${ROOT_HASH_SEED:?}" "${MKFS_ARGS[@]}"
  for d in "${IMMUTABLE[@]}"; do
    flags=$(debugfs -R "stat $d" "$ROOT_IMG" 2>/dev/null | sed -n 's/.*Flags: \(0x[0-9a-f]*\).*/\1/p' | head -1)
    debugfs -w -R "sif $d flags $(printf '0x%x' $(( ${flags:-0} | 0x10 )))" "$ROOT_IMG" >/dev/null 2>&1
  done
  umount "$MNT"
  copy_fs_image "$ROOT_IMG" "$P4"
  rm -f "$ROOT_IMG"
else
  fstrim "$MNT" 2>/dev/null || true
  umount "$MNT"
fi
sync
step "done"
