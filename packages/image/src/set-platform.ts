/**
 * Switches a copy of the base disk to another platform, as the original's gf-set-platform did
 * with libguestfs, but without root, loop devices or mounts: the ext4 boot partition is found in
 * the GPT and edited in place with e2fsprogs' `debugfs` (`image?offset=N` opens the partition
 * inside the image file), then checked with `e2fsck -fy`.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError, type OnProgress } from '@cosa/schema';
import { makeTempDir } from '@cosa/schema/internal';
import { run } from '@cosa/ostree/internal';
import { readGpt, type GptPartition } from './_gpt.js';
import { platformSettings, type PlatformsConfig } from './platforms.js';

/** Marker lines around the GRUB console commands in grub.cfg (as the original's grub.cfg). */
export const GRUB_CONSOLE_START = '# CONSOLE-SETTINGS-START';
/** See {@link GRUB_CONSOLE_START}. */
export const GRUB_CONSOLE_END = '# CONSOLE-SETTINGS-END';

/** What a kernel command line edit does. */
export interface KargsEdit {
  /** The new `ignition.platform.id`. */
  platformId: string;
  /** Kernel arguments to remove (the previous platform's). */
  remove: readonly string[];
  /** Kernel arguments to add (the new platform's), in order, at the end. */
  add: readonly string[];
}

/** Applies `edit` to a kernel command line (a list of whitespace-separated arguments). */
export function editKernelArguments(cmdline: string, edit: KargsEdit): string {
  const drop = new Set([...edit.remove, ...edit.add]);
  const out: string[] = [];
  let hadId = false;
  for (const t of cmdline.trim().split(/\s+/)) {
    if (t === '' || drop.has(t)) continue;
    if (t.startsWith('ignition.platform.id=')) {
      if (hadId) continue;
      hadId = true;
      out.push(`ignition.platform.id=${edit.platformId}`);
      continue;
    }
    out.push(t);
  }
  if (!hadId) out.push(`ignition.platform.id=${edit.platformId}`);
  out.push(...edit.add);
  return out.join(' ');
}

/** The `ignition.platform.id` of a kernel command line, if any. */
export function platformIdOf(cmdline: string): string | undefined {
  for (const t of cmdline.trim().split(/\s+/)) if (t.startsWith('ignition.platform.id=')) return t.slice('ignition.platform.id='.length);
  return undefined;
}

/** Rewrites the `options` line of a BLS entry (loader/entries/*.conf). */
export function rewriteBlsEntry(text: string, edit: KargsEdit): string {
  return text.replace(/^options([ \t]+)(.*)$/m, (_m, _sp: string, opts: string) => `options ${editKernelArguments(opts, edit)}`);
}

/**
 * Rewrites a grub.cfg generated from the BLS entry: the kernel arguments of every `linux` line,
 * and the console block (between {@link GRUB_CONSOLE_START} and {@link GRUB_CONSOLE_END}; without
 * the markers, the top-level `serial`/`terminal_*` commands) replaced by `grubCommands`.
 */
export function rewriteGrubConfig(text: string, edit: KargsEdit, grubCommands: readonly string[]): string {
  const lines = text.split('\n');
  const out: string[] = [];
  const hasMarkers = lines.includes(GRUB_CONSOLE_START) && lines.includes(GRUB_CONSOLE_END);
  let inBlock = false;
  let consoleAt = -1;
  for (const line of lines) {
    if (hasMarkers) {
      if (line === GRUB_CONSOLE_START) {
        out.push(line, ...grubCommands);
        inBlock = true;
        continue;
      }
      if (line === GRUB_CONSOLE_END) inBlock = false;
      else if (inBlock) continue;
    } else if (/^(serial|terminal_input|terminal_output|terminal)(\s|$)/.test(line)) {
      if (consoleAt < 0) consoleAt = out.length;
      continue;
    }
    const m = /^(\s*)(linux|linux16|linuxefi)(\s+)(\S+)(.*)$/.exec(line);
    if (m) {
      const args = editKernelArguments(m[5] ?? '', edit);
      out.push(`${m[1]}${m[2]}${m[3]}${m[4]} ${args}`);
      continue;
    }
    out.push(line);
  }
  if (!hasMarkers) out.splice(consoleAt < 0 ? 0 : consoleAt, 0, ...grubCommands);
  return out.join('\n');
}

/** Options of {@link setPlatform}. */
export interface SetPlatformOptions {
  /** The raw disk image to edit in place (a copy of the base disk). */
  rawDisk: string;
  /** The new Ignition platform id (e.g. `aws`; `metal` for metal4k). */
  platform: string;
  /** The new platform's kernel arguments. */
  kargs: readonly string[];
  /** The new platform's GRUB console commands (default none: the console block is emptied). */
  grubCommands?: readonly string[] | undefined;
  /**
   * Kernel arguments to drop. Default: the kernel arguments of the platform the disk currently
   * has (read from its BLS entry), looked up with `arch` and `platformsConfig`.
   */
  removeKargs?: readonly string[] | undefined;
  /** Arch for looking up the current platform's kernel arguments (default `x86_64`). */
  arch?: string | undefined;
  /** platforms.yaml for looking up the current platform's kernel arguments (default: built-in). */
  platformsConfig?: PlatformsConfig | undefined;
  /** Where scratch files go (default the OS temp dir). */
  tmpDir?: string | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

/** What {@link setPlatform} changed. */
export interface SetPlatformResult {
  /** The platform id the disk had before. */
  previousPlatform: string | undefined;
  /** Files rewritten in the boot partition (paths inside it). */
  changed: string[];
  /** The boot partition that was edited. */
  partition: GptPartition;
}

interface DirEntry {
  name: string;
  mode: number;
  uid: number;
  gid: number;
}

const SAFE_NAME = /^[A-Za-z0-9._+@-]+$/;

/** Splits `debugfs -f` output into each command's output, keyed by the command (echoed as `debugfs: <cmd>`). */
function splitOutput(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  let cur: string | undefined;
  let buf: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^debugfs: (.*)$/.exec(line);
    if (m) {
      if (cur !== undefined) out.set(cur, buf.join('\n'));
      cur = m[1] ?? '';
      buf = [];
    } else buf.push(line);
  }
  if (cur !== undefined) out.set(cur, buf.join('\n'));
  return out;
}

function parseLsP(stdout: string): DirEntry[] {
  // `ls -p` lines: /inode/mode/uid/gid/name/size/
  const out: DirEntry[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line.trim());
    if (!m) continue;
    out.push({ name: m[5] ?? '', mode: parseInt(m[2] ?? '0', 8), uid: Number(m[3]), gid: Number(m[4]) });
  }
  return out;
}

/** Finds the ext4 boot partition: the GPT partition named `boot`, else partition 3. */
export async function findBootPartition(rawDisk: string): Promise<GptPartition & { sectorSize: 512 | 4096 }> {
  const gpt = await readGpt(rawDisk);
  const p = gpt.partitions.find((x) => x.name === 'boot') ?? gpt.partitions.find((x) => x.index === 3);
  if (!p) throw new CosaError('COSA_IMAGE_FAILED', `${rawDisk}: no boot partition (GPT name "boot" or partition 3)`);
  const fh = await open(rawDisk, 'r');
  try {
    const b = Buffer.alloc(2);
    await fh.read(b, 0, 2, p.start + 1024 + 56);
    if (b.readUInt16LE(0) !== 0xef53) {
      throw new CosaError('COSA_IMAGE_FAILED', `${rawDisk}: partition ${p.index} ("${p.name}") is not an ext2/3/4 file system`, {
        hint: 'setPlatform edits an ext4 /boot (image.yaml bootfs: ext4)',
      });
    }
  } finally {
    await fh.close();
  }
  return { ...p, sectorSize: gpt.sectorSize };
}

/**
 * Switches the disk image `rawDisk` to `platform` in place: in the boot partition, every BLS
 * entry's `options` gets `ignition.platform.id=<platform>`, loses the previous platform's kernel
 * arguments and gains `kargs`; grub.cfg (`grub/grub.cfg` or `grub2/grub.cfg`) gets the same
 * kernel arguments and `grubCommands` as its console block. Needs no root: the partition is
 * edited with `debugfs -w` at its byte offset inside the file, then `e2fsck -fy` checks it.
 */
export async function setPlatform(options: SetPlatformOptions): Promise<SetPlatformResult> {
  const { rawDisk, signal, onProgress } = options;
  if (rawDisk.includes('?')) throw new CosaError('COSA_PATH_UNSAFE', `disk image path must not contain "?": ${rawDisk}`);
  if (!/^[A-Za-z0-9._-]+$/.test(options.platform)) throw new CosaError('COSA_PLATFORM_UNKNOWN', `invalid platform id "${options.platform}"`);
  const part = await findBootPartition(rawDisk);
  const dev = `${rawDisk}?offset=${part.start}`;
  const work = await makeTempDir('cosa-setplatform-', options.tmpDir);
  // Times written by debugfs and e2fsck: the root directory's ctime (the commit's time on a disk
  // cosa made), not the time of day, so the same disk edited the same way gives the same bytes.
  let timeEnv: Record<string, string> = {};
  const debugfs = async (cmds: string[], write = false) => {
    const file = join(work, `cmds-${Math.random().toString(36).slice(2)}`);
    await writeFile(file, cmds.join('\n') + '\n');
    return run(['debugfs', ...(write ? ['-w'] : []), '-f', file, dev], { cwd: work, signal, onProgress, streamLines: false, env: timeEnv });
  };
  try {
    // Which files to edit: BLS entries (loader is a symlink to loader.N in ostree's /boot) and
    // grub.cfg. One debugfs run lists every candidate directory (a missing one only prints an error).
    const listed = splitOutput((await debugfs(['ls -p loader/entries', 'ls -p grub', 'ls -p grub2', 'stat <2>'])).stdout);
    const rootCtime = /\bctime: 0x([0-9a-f]+)/.exec(listed.get('stat <2>') ?? '')?.[1];
    if (rootCtime) timeEnv = { E2FSPROGS_FAKE_TIME: String(parseInt(rootCtime, 16)), E2FSCK_TIME: String(parseInt(rootCtime, 16)) };
    const files: { path: string; entry: DirEntry; kind: 'bls' | 'grub' }[] = [];
    for (const e of parseLsP(listed.get('ls -p loader/entries') ?? '')) {
      if ((e.mode & 0o170000) !== 0o100000 || !e.name.endsWith('.conf')) continue;
      if (!SAFE_NAME.test(e.name)) throw new CosaError('COSA_IMAGE_FAILED', `unexpected BLS entry name "${e.name}"`);
      files.push({ path: `loader/entries/${e.name}`, entry: e, kind: 'bls' });
    }
    if (files.length === 0) {
      throw new CosaError('COSA_IMAGE_FAILED', `${rawDisk}: no BLS entries (loader/entries/*.conf) in the boot partition`);
    }
    for (const dir of ['grub', 'grub2']) {
      const cfg = parseLsP(listed.get(`ls -p ${dir}`) ?? '').find((e) => e.name === 'grub.cfg' && (e.mode & 0o170000) === 0o100000);
      if (cfg) files.push({ path: `${dir}/grub.cfg`, entry: cfg, kind: 'grub' });
    }

    // Read them and list their extended attributes in one debugfs run.
    const local = (i: number) => `f${i}`;
    const read = splitOutput((await debugfs(files.flatMap((f, i) => [`dump ${f.path} ${local(i)}`, `ea_list ${f.path}`]))).stdout);
    const texts = await Promise.all(files.map((_f, i) => readFile(join(work, local(i)), 'utf8')));
    // Keep the files' extended attributes (SELinux labels on Fedora-like systems).
    const xattrs = files.map((f, i) =>
      [...(read.get(`ea_list ${f.path}`) ?? '').matchAll(/^\s+(\S+) \(\d+\)/gm)]
        .map((m) => m[1] ?? '')
        .filter((n) => SAFE_NAME.test(n))
        .map((name, j) => ({ name, file: `x${i}-${j}` })),
    );
    const eaGets = files.flatMap((f, i) => (xattrs[i] ?? []).map((x) => `ea_get -f ${x.file} ${f.path} ${x.name}`));
    if (eaGets.length > 0) await debugfs(eaGets);

    let previousPlatform: string | undefined;
    for (const [i, f] of files.entries()) {
      if (f.kind !== 'bls') continue;
      const opts = /^options[ \t]+(.*)$/m.exec(texts[i] ?? '')?.[1];
      if (opts !== undefined) previousPlatform ??= platformIdOf(opts);
    }
    const remove =
      options.removeKargs ??
      (previousPlatform ? platformSettings(previousPlatform, { arch: options.arch ?? 'x86_64', platformsConfig: options.platformsConfig }).kernelArguments : []);
    const edit: KargsEdit = { platformId: options.platform, remove, add: options.kargs };

    const changed: string[] = [];
    const cmds: string[] = [];
    const newTexts = new Map<number, string>();
    for (const [i, f] of files.entries()) {
      const before = texts[i] ?? '';
      const after = f.kind === 'bls' ? rewriteBlsEntry(before, edit) : rewriteGrubConfig(before, edit, options.grubCommands ?? []);
      if (after === before) continue;
      const src = `n${i}`;
      await writeFile(join(work, src), after);
      newTexts.set(i, after);
      cmds.push(`rm ${f.path}`, `write ${src} ${f.path}`);
      cmds.push(`sif ${f.path} mode 0${f.entry.mode.toString(8)}`, `sif ${f.path} uid ${f.entry.uid}`, `sif ${f.path} gid ${f.entry.gid}`);
      for (const x of xattrs[i] ?? []) cmds.push(`ea_set -f ${x.file} ${f.path} ${x.name}`);
      changed.push(f.path);
    }
    if (cmds.length > 0) {
      const r = await debugfs(cmds, true);
      // debugfs reports command errors on stderr but exits 0: read back and compare instead.
      await debugfs([...newTexts.keys()].map((i) => `dump ${files[i]?.path} v${i}`));
      for (const [i, want] of newTexts) {
        const got = await readFile(join(work, `v${i}`), 'utf8').catch(() => undefined);
        if (got !== want) {
          throw new CosaError('COSA_IMAGE_FAILED', `debugfs could not rewrite ${files[i]?.path} in ${rawDisk}: ${r.stderr.trim().split('\n').slice(-5).join('; ')}`);
        }
      }
      await run(['e2fsck', '-fy', dev], { signal, onProgress, okExitCodes: [0, 1], streamLines: false, env: timeEnv });
    }
    return { previousPlatform, changed, partition: part };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
