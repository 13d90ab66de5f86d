/**
 * The VM writer's host half: the deployed sysroot (the sysroot repo in bare mode, the deployment,
 * /boot's kernel, initramfs and BLS entry) is made on the host by the disk script's `sysroot`
 * stage, under fakeroot, and handed to the guest as one tar on a read-only virtio disk. The guest
 * only unpacks it onto the new file systems: no checksumming and no ostree run in the emulated
 * VM. The stage runs while the appliance boots; the guest waits for the tar's header, written
 * last. Rootless: fakeroot records the owners and modes ostree sets (setuid, group shadow, ...)
 * and tar stores the recorded ones. For Debian GRUB trees the stage also makes the whole ext4
 * /boot offline (mke2fs -d, as the direct writer's) and writes it into the disk file's /boot
 * partition, so the guest leaves /boot alone; with an ext4 root it makes the root offline too and
 * writes it into partition 4 (no tar: the guest only runs grub-bios-setup).
 */
import { open, rm, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hasTool, run } from '@cosa/ostree/internal';
import { listCommitTree, readRepoMode } from '@cosa/ostree';
import { assetPath } from './_assets.js';
import { readGpt } from './_gpt.js';
import { CommandFailedError, CosaError, isCosaError, withPhase, type OnProgress } from '@cosa/schema';

/** Where the tar starts in the block input (its header, at 0, says when it is complete). */
const TAR_OFFSET = 1024 * 1024;

/**
 * The commit's listing (`ostree ls -R -C -X`, written into `dir`) when the disk described by the
 * script's environment can take the staged sysroot, else undefined (the guest pulls and deploys
 * itself): fakeroot is on the host, the repo is bare-user or bare, no file carries extended
 * attributes, and nothing of the deploy needs the target's kernel (fs-verity on the objects for
 * ext4verity, ostree's composefs image). `COSA_VM_STAGE_SYSROOT=0` turns it off (benchmarks
 * compare both).
 */
export async function sysrootListing(o: { env: Record<string, string>; repo: string; commit: string; dir: string; signal?: AbortSignal }): Promise<string | undefined> {
  const { env } = o;
  if (process.env.COSA_VM_STAGE_SYSROOT === '0') return undefined;
  if (env.COMPOSEFS === '1' || env.ROOTFS === 'ext4verity' || env.ROOTFS === 'btrfs') return undefined;
  if (!(await hasTool('fakeroot'))) return undefined;
  const mode = await readRepoMode(o.repo);
  if (mode !== 'bare-user' && mode !== 'bare') return undefined;
  // fakeroot hides the source's user.ostreemeta: the objects' metadata comes from this listing.
  const lines = await listCommitTree({ repo: o.repo, rev: o.commit, checksums: true, xattrs: true, ...(o.signal ? { signal: o.signal } : {}) });
  // Extended attributes (SELinux labels) are not carried through fakeroot: those trees deploy in the guest.
  if (lines.some((l) => !l.includes(' { @a(ayay) [] } '))) return undefined;
  const file = join(o.dir, 'sysroot.listing');
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** Options of {@link withStagedSysroot}. */
export interface StageSysrootOptions {
  /** The disk script (assets/disk.sh). */
  script: string;
  /** The disk script's environment (commit, osname, kargs, image.yaml choices). */
  env: Record<string, string>;
  /** The OSTree repo holding the commit (bare-user or bare). */
  repo: string;
  /** The commit's listing, from {@link sysrootListing}. */
  listing: string;
  /** The disk script's work directory. */
  workDir: string;
  /** A scratch directory for the staged tree (removed) and the block input. */
  dir: string;
  /**
   * The raw disk file the VM writes (laid out: GPT, ESP, /boot). When given, the stage writes the
   * whole ext4 /boot into its partition 3 for trees that boot with Debian's GRUB (see disk.sh): the
   * guest only unpacks the root then; with an ext4 root, the root into partition 4 too, and the
   * guest unpacks nothing. The guest never touches those ranges of the file.
   */
  disk?: string;
  /** Bytes the tar may take (the disk's size is an upper bound). */
  capacityBytes: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/**
 * Runs the disk script's `sysroot` stage on the host into the block input `file`. As root, the
 * stage runs without capabilities: ostree's freeze of /boot's file system and its immutable
 * deployment directory must not reach the host's file system (ostree skips both on EPERM).
 */
async function stage(o: StageSysrootOptions, file: string, signal: AbortSignal): Promise<void> {
  const tree = join(o.dir, 'sysroot');
  await mkdir(tree, { recursive: true });
  const parts = o.disk ? (await readGpt(o.disk)).partitions : [];
  const boot = parts.find((p) => p.index === 3);
  const root = parts.find((p) => p.index === 4);
  const bootEnv = o.disk && boot
    ? {
      COSA_HOST_DISK: o.disk, COSA_HOST_BOOT_OFFSET: String(boot.start), COSA_HOST_BOOT_BYTES: String(boot.size),
      ...(root ? { COSA_HOST_ROOT_OFFSET: String(root.start), COSA_HOST_ROOT_BYTES: String(root.size) } : {}),
    }
    : {};
  // Tied to this process: a SIGKILLed cosa takes the stage along. As root, in a PID namespace
  // whose processes (faked, ostree, tar) all die with it; rootless, the direct child at least.
  const confine = process.getuid?.() === 0
    ? ['setpriv', '--pdeathsig', 'KILL', '--', 'unshare', '--pid', '--fork', '--kill-child', '--',
      'setpriv', '--bounding-set=-all', '--inh-caps=-all', '--']
    : ['setpriv', '--pdeathsig', 'KILL', '--'];
  try {
    await run([...confine, 'fakeroot', '--', 'bash', o.script], {
      env: {
        ...o.env, COSA_STAGE: 'sysroot', COSA_MNT: tree, COSA_WORK: o.workDir, COSA_IN_REPO: o.repo,
        COSA_SYSROOT_TAR: file, COSA_SYSROOT_CAPACITY: String(TAR_OFFSET + o.capacityBytes),
        COSA_SYSROOT_LISTING: o.listing, COSA_IMPORT_BARE: assetPath('import-bare.pl'), ...bootEnv,
      },
      cwd: o.workDir, signal, onProgress: o.onProgress, phase: 'stage-sysroot',
    });
  } catch (e) {
    if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') {
      throw new CosaError('COSA_IMAGE_FAILED', `staging the sysroot on the host failed:\n${e.stderr.split('\n').slice(-30).join('\n')}`, { cause: e });
    }
    throw e;
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

/**
 * Stages the sysroot on the host into a block input while `fn` (the VM run, given the block
 * input's path) already runs. A failed stage marks the block input so the guest stops waiting, and
 * its error is the one thrown; a failed `fn` stops the stage.
 */
export async function withStagedSysroot<T>(o: StageSysrootOptions, fn: (file: string) => Promise<T>): Promise<T> {
  const file = join(o.dir, 'sysroot.blk');
  await writeFile(file, '');
  const fh = await open(file, 'r+');
  try {
    await fh.truncate(TAR_OFFSET + o.capacityBytes);
  } finally {
    await fh.close();
  }
  const ac = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, ac.signal]) : ac.signal;
  const staged = withPhase(o.onProgress, 'stage-sysroot', () => stage(o, file, signal)).catch(async (e: unknown) => {
    const mark = await open(file, 'r+');
    await mark.write(Buffer.from('COSA-SYSROOT-FAILED\n'), 0, undefined, 0).finally(() => mark.close());
    throw e;
  });
  staged.catch(() => {}); // awaited below on every path
  try {
    const result = await fn(file);
    await staged;
    return result;
  } catch (e) {
    ac.abort();
    const stageError = await staged.then(() => undefined, (x: unknown) => x);
    throw stageError && !isCosaError(stageError, 'COSA_EXEC_ABORTED') ? stageError : e;
  } finally {
    await rm(file, { force: true });
  }
}
