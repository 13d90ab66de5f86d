#!/bin/bash
# /init of the cosa supermin appliance: mount the shares named on the kernel command line, run
# the executor's command with its environment, leave stdout, stderr and the exit status (rc) in
# the work share, power off. Never exits without powering off: the host waits for qemu to end.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /run /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
echo "cosa-appliance: init at uptime $(cut -d' ' -f1 /proc/uptime)"
modprobe -q 9pnet_virtio; modprobe -q 9p
for m in loop xfs ext4 vfat; do modprobe -q "$m"; done
opts=trans=virtio,version=9p2000.L,msize=524288,cache=loose
mkdir -p /cosa/work
if mount -t 9p -o "$opts" work /cosa/work; then
  for arg in $(cat /proc/cmdline); do
    case "$arg" in cosa.in=*)
      for name in $(echo "${arg#cosa.in=}" | tr ',' ' '); do
        mkdir -p "/cosa/in/$name"
        mount -t 9p -o "$opts,ro" "in_$name" "/cosa/in/$name" || echo "cosa-appliance: cannot mount input $name"
      done;;
    esac
  done
  if [ -f /cosa/work/.cosa-cmd.sh ]; then
    (
      set -a; . /cosa/work/.cosa-env; set +a
      cd /cosa/work && exec bash .cosa-cmd.sh
    ) > >(tee /cosa/work/.cosa-out) 2> >(tee /cosa/work/.cosa-err >&2)
    rc=$?
    sleep 0.2
    echo "$rc" > /cosa/work/.cosa-rc
    echo "cosa-appliance: command exited with $rc at uptime $(cut -d' ' -f1 /proc/uptime)"
  else
    echo "cosa-appliance: no command in the work share"
  fi
  sync
  umount -a -t 9p 2>/dev/null
else
  echo "cosa-appliance: cannot mount the work share"
fi
sync
# sysrq power-off is asynchronous; wait for it rather than exiting (which would panic).
echo o > /proc/sysrq-trigger 2>/dev/null
sleep 30
