/**
 * The built-in `basic` checks for an OSTree OS, each a small sh script run as root in the booted
 * guest: a subtest `basic.<name>` passes when its script exits 0.
 */

/** What the basic checks compare the guest against. */
export interface BasicExpectations {
  /** The build's OSTree commit: the booted deployment must be it. */
  commit: string;
  /** Kernel arguments the image was written with: each must be on /proc/cmdline. */
  kargs: string[];
}

/** One basic check. */
export interface BasicCheck {
  /** Subtest name (`basic.<name>`). */
  name: string;
  script: string;
  /** Deadline of the script in the guest. */
  timeoutMs: number;
}

/** The sh function that prints the booted deployment's commit (`ostree admin status`'s `*` line). */
export const BOOTED_COMMIT_SH = `booted_commit() { ostree admin status | sed -n 's/^\\* [^ ]* \\([0-9a-f]\\{64\\}\\)\\.[0-9]*.*/\\1/p'; }`;

/** The checks, in the order they run. */
export function basicChecks(e: BasicExpectations): BasicCheck[] {
  const kargs = e.kargs.map((k) => `'${k.replace(/'/g, `'\\''`)}'`).join(' ');
  return [
    {
      name: 'basic.default-target',
      timeoutMs: 5 * 60_000,
      script: `state=$(systemctl is-system-running --wait)
echo "system state: $state"
target=$(systemctl get-default)
systemctl is-active --quiet "$target" || { echo "default target $target is not active"; exit 1; }
echo "default target $target is active"
failed=$(systemctl list-units --state=failed --no-legend --plain)
[ -z "$failed" ] || { echo "failed units:"; echo "$failed"; exit 1; }
echo "no failed units"`,
    },
    {
      name: 'basic.usr-read-only',
      timeoutMs: 60_000,
      script: `findmnt -no TARGET,OPTIONS /usr || true
if touch /usr/.kola-rw-probe 2>/dev/null; then rm -f /usr/.kola-rw-probe; echo "/usr is writable"; exit 1; fi
echo "/usr is read-only"`,
    },
    {
      name: 'basic.booted-commit',
      timeoutMs: 60_000,
      script: `${BOOTED_COMMIT_SH}
c=$(booted_commit)
echo "booted: $c"
echo "build:  ${e.commit}"
[ "$c" = "${e.commit}" ]`,
    },
    {
      name: 'basic.kernel-arguments',
      timeoutMs: 60_000,
      script: `cmdline=" $(cat /proc/cmdline) "
echo "cmdline:$cmdline"
rc=0
for k in ${kargs}; do case "$cmdline" in *" $k "*) ;; *) echo "missing: $k"; rc=1;; esac; done
exit $rc`,
    },
    {
      name: 'basic.etc-var-writable',
      timeoutMs: 60_000,
      script: `rc=0
for d in /etc /var; do
  f=$d/.kola-write-probe
  if echo kola > "$f" && rm -f "$f"; then echo "$d is writable"; else echo "$d is not writable"; rc=1; fi
done
exit $rc`,
    },
    {
      name: 'basic.no-oops-oom',
      timeoutMs: 2 * 60_000,
      script: `hits=$(journalctl -b -k --no-pager -o cat | grep -E 'Oops|BUG: |Kernel panic|Out of memory|oom-kill|invoked oom-killer|general protection fault|Call Trace:' || true)
[ -z "$hits" ] || { echo "the kernel log shows:"; echo "$hits"; exit 1; }
echo "no oops, panic or OOM in this boot's kernel log"`,
    },
  ];
}
