/**
 * createDisk: a bootable GPT disk (raw) from an OSTree commit, written by an executor running
 * assets/disk.sh. Layout: BIOS boot 1 MiB, ESP 127 MiB (vfat), /boot 384 MiB (ext4, LABEL=boot),
 * / the rest (xfs, LABEL=root).
 */
import { access, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { hasTool } from '@cosa/ostree/internal';
import { initRepo, listCommitTree, ostreeVersionText, pullLocal, readRepoMode, revParse, showCommit } from '@cosa/ostree';
import { CosaError, hashFile, withPhase, type ImageConfig, type OnProgress } from '@cosa/schema';
import { assetPath } from './_assets.js';
import { DISK_TOOLS, requireHostTools } from './_host-packages.js';
import { firstbootNetworkKargs, firstbootStamp, grubConfig, IGNITION_FIRSTBOOT_KARG, rootfsArgs, rootMkfs } from './_firstboot.js';
import { sysrootListing, withStagedSysroot } from './_sysroot.js';
import { BOOT_UUID, bootExt4Args, commitUuid, layoutDisk, prepareBootInputs, type SectorSize } from './_prepare.js';
import type { Executor, ExecutorRunOptions } from './executor.js';

const MiB = 1024 * 1024;
/** BIOS boot + ESP + /boot + GPT headers and alignment, in MiB. */
export const FIXED_PARTITIONS_MIB = 1 + 127 + 384 + 2;
/** mkfs.xfs refuses smaller filesystems. */
const XFS_MIN_MIB = 300;

/** Options of {@link estimateDiskSize}. */
export interface EstimateDiskSizeOptions {
  repo: string;
  /** A commit checksum or ref. */
  commit: string;
  /** Margin over the commit's content size (default 35 %, as the original). */
  addPercent?: number;
  signal?: AbortSignal;
}

/** The sizes the disk needs for a commit. */
export interface DiskSizeEstimate {
  /** Sum of the commit's file sizes (bytes). */
  contentBytes: number;
  /** Root filesystem size needed (MiB). */
  rootMiB: number;
  /** Whole disk needed (MiB). */
  diskMiB: number;
}

/** Estimates the root filesystem and disk size a commit needs (content + margin + fixed partitions). */
export async function estimateDiskSize(options: EstimateDiskSizeOptions): Promise<DiskSizeEstimate> {
  const lines = await listCommitTree({ repo: options.repo, rev: options.commit, signal: options.signal });
  let contentBytes = 0;
  let entries = 0;
  for (const line of lines) {
    entries++;
    if (!line.startsWith('-')) continue;
    const size = Number(line.trim().split(/\s+/)[3]);
    if (Number.isFinite(size)) contentBytes += size;
  }
  // Per-entry metadata (inodes, directories) plus the margin, plus the XFS log and metadata.
  const withMargin = (contentBytes + entries * 4096) * (1 + (options.addPercent ?? 35) / 100);
  const rootMiB = Math.max(XFS_MIN_MIB, Math.ceil(withMargin / MiB) + 64);
  return { contentBytes, rootMiB, diskMiB: rootMiB + FIXED_PARTITIONS_MIB };
}


/**
 * The commit's timestamp (seconds): the time every file of a file system made offline gets, so
 * the same commit gives the same bytes (the build's SOURCE_DATE_EPOCH when cosa made the commit).
 */
async function commitTime(repo: string, commit: string, signal?: AbortSignal): Promise<number> {
  const info = await showCommit({ repo, rev: commit, ...(signal ? { signal } : {}) });
  return Math.floor(info.timestamp.getTime() / 1000);
}

/**
 * The disk script's environment for file systems made offline from the deployed files (the ext4
 * /boot): their time, mkfs options and directory hash seed, all functions of the commit.
 */
async function offlineFsEnv(options: CreateDiskOptions, commit: string, sectorSize: SectorSize): Promise<Record<string, string>> {
  return {
    FS_TIME: String(await commitTime(options.repo, commit, options.signal)),
    BOOT_EXT4_ARGS: bootExt4Args({ sectorSize, metadataCsumSeed: options.imageConfig?.bootfs_metadata_csum_seed === true }).join(' '),
    BOOT_HASH_SEED: commitUuid(commit, 'boot-hash-seed'),
    ROOT_HASH_SEED: commitUuid(commit, 'root-hash-seed'),
  };
}

/** Options of {@link createDisk}. */
export interface CreateDiskOptions {
  /** The OSTree repo holding the commit (any mode). */
  repo: string;
  /** Hash the raw disk (default true; off when it is only an intermediate to convert). */
  hash?: boolean;
  /** The commit checksum; resolved from `ref` when absent. */
  commit?: string;
  /** The ref, recorded in the deployment's origin and the aleph file. */
  ref?: string;
  /** The stateroot (`ostree admin os-init`), e.g. `debian` or `fedora-coreos`. */
  osname: string;
  /**
   * image.yaml (merged, with defaults): `size` (GiB) fixes the disk size; `extra-kargs`, `console`,
   * `bootfs`, `rootfs`, `rootfs-args`, `composefs`, `grub-script`, `ignition-network-kcmdline`,
   * `ostree-remote(-url, -gpg-verify)` and `bootfs_metadata_csum_seed` shape the disk (docs/images.md).
   */
  imageConfig?: Partial<ImageConfig>;
  /** URL of image.yaml `ostree-remote` configured in the disk's sysroot repo; overrides `ostree-remote-url`. */
  ostreeRemoteUrl?: string;
  /** The platform id: `ignition.platform.id=<platform>` on the kernel command line. */
  platform: string;
  /**
   * Logical sector size of the disk (default 512). 4096 writes a 4Kn disk (metal4k): the same
   * partitions, a FAT16 ESP with 4096-byte sectors, UEFI boot only (no BIOS bootloader).
   */
  sectorSize?: SectorSize;
  /** The raw disk image to write (replaced atomically). */
  output: string;
  /** Disk size in GiB; overrides image.yaml `size`; estimated from the commit when neither is set. */
  sizeGiB?: number;
  executor: Executor;
  /** Build id, for the aleph file. */
  buildId: string;
  /** Image file name, for the aleph file (default: the output's name). */
  imgid?: string;
  /** Scratch space; a private subdirectory is made and removed. */
  tmpDir: string;
  /** Cache directory (host-prepared boot inputs are cheap and not cached today). */
  cacheDir?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** A written image. */
export interface ImageResult {
  path: string;
  /** Apparent size in bytes. */
  size: number;
  sha256: string;
}

/**
 * The kernel arguments of a deployment (root and its file system type, console, extra-kargs,
 * platform id), ending in the GRUB variable `$ignition_firstboot` that GRUB expands on first boot
 * (see docs/images.md).
 */
export function diskKernelArgs(imageConfig: Partial<ImageConfig> | undefined, platform: string): string[] {
  const consoles = imageConfig?.console ?? ['ttyS0,115200n8'];
  // rootfstype=: the initramfs starts loading the root's file system module before udev has found
  // the disk (cosa's init-top script), instead of mount asking for it afterwards. The kernel's
  // name of the type: ext4verity is an ext4 file system.
  const rootfs = imageConfig?.rootfs ?? 'xfs';
  return ['root=LABEL=root', `rootfstype=${rootfs === 'ext4verity' ? 'ext4' : rootfs}`, 'rw', ...consoles.map((c) => `console=${c}`), ...(imageConfig?.['extra-kargs'] ?? []), `ignition.platform.id=${platform}`, IGNITION_FIRSTBOOT_KARG];
}

/**
 * Checks the image.yaml choices this host and executor can honour, before anything is written,
 * and returns the disk script's environment for them. Errors name the image.yaml key.
 */
async function imageConfigEnv(options: CreateDiskOptions, signal?: AbortSignal): Promise<Record<string, string>> {
  const cfg = options.imageConfig ?? {};
  const rootfs = cfg.rootfs ?? 'xfs';
  const bootfs = cfg.bootfs ?? 'ext4';
  const mkfs = rootMkfs(rootfs);
  if (!(await hasTool(mkfs))) {
    throw new CosaError('COSA_TOOLS_MISSING', `image.yaml rootfs: ${rootfs} needs ${mkfs}, which this host does not have`, { hint: `install it (btrfs-progs for mkfs.btrfs) or choose rootfs: xfs or ext4` });
  }
  if (rootfs === 'btrfs' && options.executor.kind === 'vm') {
    throw new CosaError('COSA_TOOLS_MISSING', 'image.yaml rootfs: btrfs needs the direct executor: the VM appliance has no mkfs.btrfs', { hint: 'run as root with loop devices (--direct), or choose rootfs: xfs or ext4' });
  }
  // The direct executor writes with the running kernel: ext4verity needs its fs-verity support.
  if (rootfs === 'ext4verity' && options.executor.kind === 'direct' && !(await access('/sys/fs/ext4/features/verity').then(() => true, () => false))) {
    throw new CosaError('COSA_TOOLS_MISSING', 'image.yaml rootfs: ext4verity needs a kernel with fs-verity for ext4, and this one has none (/sys/fs/ext4/features/verity)', {
      hint: 'choose rootfs: ext4 or xfs, or write the disk on a kernel built with CONFIG_FS_VERITY',
    });
  }
  if (cfg.composefs) {
    const features = await ostreeVersionText({ signal });
    if (!/^\s*-\s*composefs\s*$/m.test(features)) {
      throw new CosaError('COSA_TOOLS_MISSING', `image.yaml composefs: true needs an ostree built with composefs; this host's ostree (${/Version: '?([^'\n]+)/.exec(features)?.[1] ?? 'unknown'}) has none`, {
        hint: 'set composefs: false, or build on a host whose `ostree --version` lists composefs',
      });
    }
  }
  const remoteUrl = options.ostreeRemoteUrl ?? cfg['ostree-remote-url'];
  const remote = cfg['ostree-remote'];
  if (remoteUrl && !remote) throw new CosaError('COSA_SCHEMA_INVALID', 'image.yaml ostree-remote-url needs ostree-remote (the remote\'s name)');
  if (remote && !options.ref) throw new CosaError('COSA_USAGE', `image.yaml ostree-remote: ${remote} needs the build's ref (createDisk ref)`);
  return {
    BOOTFS: bootfs,
    BOOT_UUID,
    ROOTFS: rootfs,
    ROOTFS_ARGS: rootfsArgs(cfg).join(' '),
    COMPOSEFS: cfg.composefs ? '1' : '0',
    OSTREE_REMOTE: remote ?? '',
    OSTREE_REMOTE_URL: remoteUrl ?? '',
    OSTREE_REMOTE_GPG_VERIFY: cfg['ostree-remote-gpg-verify'] ? '1' : '0',
  };
}

/** Writes /boot's grub.cfg and the Ignition first-boot stamp into the disk script's work dir. */
async function writeBootFiles(workDir: string, imageConfig: Partial<ImageConfig> | undefined): Promise<void> {
  await writeFile(join(workDir, 'grub.cfg'), grubConfig(imageConfig));
  await writeFile(join(workDir, 'ignition.firstboot'), firstbootStamp(firstbootNetworkKargs(imageConfig)));
}

/**
 * Writes a bootable raw disk from `commit` through `executor`: partitions, filesystems,
 * `ostree admin init-fs/os-init/deploy`, the aleph file, GRUB for BIOS and UEFI.
 * Throws COSA_IMAGE_TOO_SMALL (with the needed size) when the requested size cannot hold the commit.
 */
export async function createDisk(options: CreateDiskOptions): Promise<ImageResult> {
  const { signal, onProgress } = options;
  await requireHostTools(DISK_TOOLS);
  const rev = options.commit ?? options.ref;
  if (!rev) throw new CosaError('COSA_USAGE', 'createDisk needs a commit or a ref');
  const commit = await revParse({ repo: options.repo, ref: rev, signal });
  if (!commit) throw new CosaError('COSA_OSTREE_FAILED', `${rev} is not in ${options.repo}`);
  const configEnv = await imageConfigEnv(options, signal);
  const sizeDisk = async (): Promise<{ est: DiskSizeEstimate; diskMiB: number }> => {
    const est = await withPhase(onProgress, 'estimate-size', () => estimateDiskSize({ repo: options.repo, commit, signal }));
    const sizeGiB = options.sizeGiB ?? options.imageConfig?.size;
    if (sizeGiB === undefined) return { est, diskMiB: est.diskMiB };
    const diskMiB = Math.floor(sizeGiB * 1024);
    if (diskMiB < est.diskMiB) {
      const need = Math.ceil((est.diskMiB / 1024) * 10) / 10;
      throw new CosaError('COSA_IMAGE_TOO_SMALL', `a ${sizeGiB} GiB disk is too small for commit ${commit.slice(0, 12)}: it needs at least ${need} GiB (${est.diskMiB} MiB)`, {
        hint: `set size: ${Math.ceil(need)} (or more) in image.yaml`,
      });
    }
    return { est, diskMiB };
  };

  await mkdir(options.tmpDir, { recursive: true });
  const tmp = await mkdtemp(join(options.tmpDir, 'disk-'));
  const workDir = join(tmp, 'work');
  await mkdir(workDir);
  const partial = join(dirname(options.output), `.${Date.now()}-${process.pid}.partial.raw`);
  try {
    const sectorSize = options.sectorSize ?? 512;
    // Sizing reads the commit, the boot inputs come from the host's GRUB: independent, so at once.
    // allSettled: neither may still be writing into tmp/ when the finally below removes it.
    const [sized, prepared] = await Promise.allSettled([
      sizeDisk(),
      withPhase(onProgress, 'prepare-boot', () => prepareBootInputs(workDir, { signal, onProgress, sectorSize })),
    ]);
    if (sized.status === 'rejected') throw sized.reason;
    if (prepared.status === 'rejected') throw prepared.reason;
    const { est, diskMiB } = sized.value;
    // Inside the (emulated) VM, decompressing an archive repo costs minutes: stage the commit
    // into a bare-user repo on the host first, where the same work takes seconds.
    let repo = options.repo;
    if (options.executor.kind === 'vm' && (await readRepoMode(options.repo)) === 'archive') {
      repo = join(tmp, 'staging-repo');
      await withPhase(onProgress, 'stage-repo', async () => {
        await initRepo({ path: repo, mode: 'bare-user', signal });
        await pullLocal({ repo, srcRepo: options.repo, revs: [commit], trusted: true, signal, onProgress });
      });
    }
    const layoutOptions = { signal, onProgress, sectorSize, bootfs: configEnv.BOOTFS as 'ext4' | 'xfs', metadataCsumSeed: options.imageConfig?.bootfs_metadata_csum_seed === true };
    const layout = await withPhase(onProgress, 'layout', () => layoutDisk(partial, diskMiB, workDir, layoutOptions));
    await writeBootFiles(workDir, options.imageConfig);
    if (layout.rootMiB < est.rootMiB) {
      throw new CosaError('COSA_IMAGE_TOO_SMALL', `the root partition is ${layout.rootMiB} MiB, commit ${commit.slice(0, 12)} needs ${est.rootMiB} MiB`);
    }
    const env: Record<string, string> = {
      OSTREE_COMMIT: commit,
      OSTREE_REF: options.ref ?? '',
      OSNAME: options.osname,
      KARGS: diskKernelArgs(options.imageConfig, options.platform).join(' '),
      ALEPH_BUILD: options.buildId,
      ALEPH_IMGID: options.imgid ?? options.output.split('/').pop() ?? '',
      // BIOS cannot boot from 4096-byte sectors: no BIOS bootloader on a 4Kn disk.
      COSA_BIOS_BOOT: sectorSize === 4096 ? '0' : '1',
      ...configEnv,
      ...(await offlineFsEnv(options, commit, sectorSize)),
    };
    const runScript = (inputs: Pick<ExecutorRunOptions, 'inputs' | 'blockInputs'>) =>
      options.executor.run({
        script: assetPath('disk.sh'), env, workDir, ...inputs, disk: partial, diskSectorSize: sectorSize, tmpDir: tmp,
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        ...(signal ? { signal } : {}), ...(onProgress ? { onProgress } : {}),
      });
    // The VM writer gets the deployed sysroot staged on the host (_sysroot.ts) when it can.
    const listing = options.executor.kind === 'vm' ? await sysrootListing({ env: configEnv, repo, commit, dir: tmp, signal }) : undefined;
    await withPhase(onProgress, `disk-${options.executor.kind}`, () =>
      listing
        ? withStagedSysroot({ script: assetPath('disk.sh'), env, repo, listing, workDir, dir: tmp, disk: partial, capacityBytes: diskMiB * MiB, signal, onProgress }, (file) =>
          runScript({ blockInputs: { sysroot: file } }))
        : runScript({ inputs: { repo } }),
    );
    const { sha256, size } = options.hash === false ? { sha256: '', size: 0 } : await withPhase(onProgress, 'hash', () => hashFile(partial, { signal }));
    await rename(partial, options.output);
    return { path: options.output, size, sha256 };
  } finally {
    await rm(partial, { force: true });
    await rm(tmp, { recursive: true, force: true });
  }
}
