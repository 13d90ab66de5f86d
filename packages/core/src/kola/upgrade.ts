/**
 * `cosa kola run-upgrade`: boot FROM's image (a per-run qcow2 overlay, so the build's image is
 * untouched), serve TO's commit from a local archive-mode OSTree repo over HTTP on 127.0.0.1,
 * pull and deploy it in the guest, reboot, check, roll back, reboot, check again.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { importRepoTar, initRepo, pullLocal, revParse, setRef, updateSummary } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';
import { CosaError, type MetaJson, type OnProgress } from '@cosa/schema';
import { BOOTED_COMMIT_SH } from './basic.js';
import { Guest } from './_guest.js';
import { serveDirectory } from './_http.js';
import { prepareOutputDir, resolveTarget, type KolaTarget } from './_target.js';
import { msToNs, overallResult, writeKolaReports, type KolaReport, type KolaTestReport } from './report.js';

/** Options of {@link kolaRunUpgrade}. */
export interface KolaRunUpgradeOptions {
  workdir?: string;
  /** The build booted first. */
  from: string;
  /** The build upgraded to (default latest). */
  to?: string;
  /** Default `<workdir>/tmp/kola-upgrade`; replaced if it holds an earlier run. */
  outputDir?: string;
  bootTimeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What {@link kolaRunUpgrade} returns. */
export interface KolaRunUpgradeResult {
  ok: boolean;
  report: KolaReport;
  reportJson: string;
  junitXml: string;
  outputDir: string;
  consoleLog: string;
}

/** The ref TO's commit is served under, and checked out from in the guest. */
function refOf(meta: MetaJson): string {
  return meta.ref ?? `cosa/${meta.name}`;
}

/** Puts TO's commit into an archive repo under its ref, with a summary. */
async function prepareRepo(to: KolaTarget, repo: string, tmpDir: string, signal?: AbortSignal): Promise<string> {
  const commit = to.meta['ostree-commit'];
  const ref = refOf(to.meta);
  const sig = signal ? { signal } : {};
  await initRepo({ path: repo, mode: 'archive', ...sig });
  // The build's archive cache (same mode, same file system: objects are hardlinked), else the
  // workdir repo, else the build's repo tar.
  let src: string | undefined;
  for (const r of [join(to.wd.tmpDir, 'repo-archive'), to.wd.repo]) {
    if (await revParse({ repo: r, ref: commit, ...sig }).catch(() => undefined)) {
      src = r;
      break;
    }
  }
  if (src) await pullLocal({ repo, srcRepo: src, revs: [commit], trusted: true, ...sig });
  else {
    const tar = to.meta.images?.ostree?.path;
    if (!tar) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${to.id}: its commit is not in ${to.wd.repo} and it has no ostree repo tar`);
    await importRepoTar({ tar: join(to.wd.buildsDir, to.id, to.arch, tar), repo, mode: 'archive', tmpDir, ...sig });
  }
  await setRef({ repo, ref, rev: commit, ...sig });
  await updateSummary({ repo, ...sig });
  return ref;
}

/** sh that (re)writes a static GRUB config from the BLS entries, newest first, when the image's GRUB has no blscfg. */
const GRUB_FROM_BLS_SH = `sync_grub() {
  cfg=/boot/grub/grub.cfg
  [ -f "$cfg" ] && ! grep -q '^blscfg' "$cfg" || return 0
  { sed '/^menuentry/,$d' "$cfg"
    for f in /boot/loader/entries/*.conf; do echo "$(sed -n 's/^version //p' "$f") $f"; done | sort -rn | while read -r v f; do
      val() { sed -n "s/^$1 //p" "$f"; }
      printf "menuentry '%s' {\\n  linux %s %s\\n  initrd %s\\n}\\n" "$(val title)" "$(val linux)" "$(val options)" "$(val initrd)"
    done; } > "$cfg.kola-new"
  mv -f "$cfg.kola-new" "$cfg" && sync
  echo "grub.cfg rewritten from the BLS entries (static GRUB config, no blscfg):"; grep -E '^menuentry|^ *linux' "$cfg"
}`;

/** The guest-side steps: name, script, deadline; a reboot between steps is marked by `reboot`. */
function upgradeSteps(from: KolaTarget, to: KolaTarget, port: number, ref: string): ({ name: string; script: string; timeoutMs: number } | 'reboot')[] {
  const marker = `kola-${randomBytes(6).toString('hex')}`;
  const expectBooted = (t: KolaTarget) => `${BOOTED_COMMIT_SH}
c=$(booted_commit); v=$(ostree show --print-metadata-key=version "$c" | tr -d "'")
echo "booted commit $c version $v"; echo "expected      ${t.meta['ostree-commit']} version ${t.meta['ostree-version']}"
[ "$c" = "${t.meta['ostree-commit']}" ] && [ "$v" = "${t.meta['ostree-version']}" ]`;
  return [
    { name: 'upgrade.boot-from', timeoutMs: 60_000, script: expectBooted(from) },
    { name: 'upgrade.etc-change', timeoutMs: 60_000, script: `echo ${marker} > /etc/kola-upgrade-marker && sync && cat /etc/kola-upgrade-marker` },
    {
      name: 'upgrade.pull-deploy',
      timeoutMs: 20 * 60_000,
      script: `set -e
${GRUB_FROM_BLS_SH}
ifc=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set "$ifc" up
ip addr add 10.0.2.15/24 dev "$ifc" 2>/dev/null || true
ip route replace default via 10.0.2.2
ostree remote add --if-not-exists --no-gpg-verify kola http://10.0.2.2:${port}
ostree pull kola ${ref}
ostree admin deploy kola:${ref}
sync_grub
ostree admin status`,
    },
    'reboot',
    { name: 'upgrade.booted-to', timeoutMs: 60_000, script: `${expectBooted(to)} || exit 1\ngrep -qx ${marker} /etc/kola-upgrade-marker && echo "/etc change kept: $(cat /etc/kola-upgrade-marker)"` },
    {
      name: 'upgrade.rollback',
      timeoutMs: 10 * 60_000,
      script: `set -e
${GRUB_FROM_BLS_SH}
# ostree >= 2023.1 can make the rollback deployment the default; older ostree redeploys FROM's commit.
if ostree admin --help 2>&1 | grep -q set-default; then ostree admin set-default 1; else ostree admin deploy --retain ${from.meta['ostree-commit']}; fi
sync_grub
ostree admin status`,
    },
    'reboot',
    { name: 'upgrade.booted-from-again', timeoutMs: 60_000, script: expectBooted(from) },
  ];
}

/** Runs the steps in `guest`; the first failure stops the run (later steps are reported as SKIP). */
async function runSteps(guest: Guest, steps: ReturnType<typeof upgradeSteps>, emit: OnProgress): Promise<KolaTestReport[]> {
  const reports: KolaTestReport[] = [];
  let failed = false;
  for (const [i, s] of steps.entries()) {
    if (s === 'reboot') {
      if (failed) continue;
      const t0 = performance.now();
      try {
        await guest.reboot();
        emit({ type: 'log', phase: 'kola', line: `rebooted in ${((performance.now() - t0) / 1000).toFixed(1)}s` });
      } catch (e) {
        failed = true;
        const next = steps[i + 1];
        if (next && next !== 'reboot') reports.push({ name: next.name, result: 'FAIL', duration: msToNs(performance.now() - t0), output: `reboot failed: ${(e as Error).message}\n`, subtests: [] });
      }
      continue;
    }
    if (reports.some((r) => r.name === s.name)) continue;
    if (failed) {
      reports.push({ name: s.name, result: 'SKIP', duration: 0, output: 'not run: an earlier step failed\n', subtests: [] });
      continue;
    }
    const r = await guest.exec(s.script, { timeoutMs: s.timeoutMs });
    const result = r.exitCode === 0 ? 'PASS' : 'FAIL';
    if (result === 'FAIL') failed = true;
    reports.push({ name: s.name, result, duration: msToNs(r.durationMs), output: r.output + (result === 'FAIL' ? `\nkola: exit status ${r.exitCode}\n` : ''), subtests: [] });
    emit({ type: 'log', phase: 'kola', line: `${result}: ${s.name}` });
  }
  return reports;
}

/**
 * Boots FROM, upgrades to TO (served over HTTP from a local archive repo), reboots, checks TO's
 * commit and version are booted and an /etc change survived, rolls back, reboots, checks FROM.
 * Writes report.json/junit.xml (one test per step) and the console log under the output dir.
 */
export async function kolaRunUpgrade(o: KolaRunUpgradeOptions): Promise<KolaRunUpgradeResult> {
  const emit = o.onProgress ?? (() => {});
  const workdir = o.workdir ?? process.cwd();
  const from = await resolveTarget(workdir, o.from, o.signal);
  const to = await resolveTarget(workdir, o.to, o.signal);
  if (from.meta['ostree-commit'] === to.meta['ostree-commit']) {
    throw new CosaError('COSA_USAGE', `builds ${from.id} and ${to.id} have the same commit: nothing to upgrade`, { hint: 'build a newer one first (cosa build --force)' });
  }
  const outputDir = o.outputDir ?? join(from.wd.tmpDir, 'kola-upgrade');
  await prepareOutputDir(outputDir);
  const vmDir = join(outputDir, 'upgrade');
  const ref = await prepareRepo(to, join(outputDir, 'repo'), from.wd.tmpDir, o.signal);
  const overlay = join(outputDir, 'overlay.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', from.image.endsWith('.qcow2') ? 'qcow2' : 'raw', '-b', from.image, overlay], o.signal ? { signal: o.signal } : {});
  const server = await serveDirectory(join(outputDir, 'repo'));
  let guest: Guest | undefined;
  let tests: KolaTestReport[];
  const t0 = performance.now();
  try {
    guest = await Guest.boot({
      image: overlay, writable: true, network: true, firmware: from.firmware, sectorSize: from.sectorSize, accel: from.accel, dir: vmDir,
      ...(o.bootTimeoutMs ? { bootTimeoutMs: o.bootTimeoutMs } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    tests = await runSteps(guest, upgradeSteps(from, to, server.port, ref), emit);
  } catch (e) {
    o.signal?.throwIfAborted();
    tests = [{ name: 'upgrade.boot-from', result: 'FAIL', duration: msToNs(performance.now() - t0), output: `kola: ${(e as Error).message}\n`, subtests: [] }];
  } finally {
    await guest?.stop();
    await server.close();
    await Promise.all([rm(overlay, { force: true }), rm(join(outputDir, 'repo'), { recursive: true, force: true }), rm(join(vmDir, 'share'), { recursive: true, force: true })]);
  }
  const report: KolaReport = { tests, result: overallResult(tests), platform: 'qemu', version: `${from.id} -> ${to.id}` };
  const paths = await writeKolaReports(outputDir, report);
  return { ok: report.result === 'PASS', report, reportJson: paths.json, junitXml: paths.junit, outputDir, consoleLog: join(vmDir, 'console.txt') };
}
