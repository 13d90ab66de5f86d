import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { basename, join } from 'node:path';
import { tmpdir } from 'node:os';
import { run } from '@cosa/ostree/internal';
import { isCosaError } from '@cosa/schema';
import { derivePlatformImage, derivePlatformImages, listPlatforms, type PlatformImage } from '../src/index.js';
import { getPlatform } from '@cosa/image/internal';
import { diskImageInfo } from '../src/convert.js';
import { findBootPartition, setPlatform } from '../src/set-platform.js';
import { MiB, makeBaseDisk, readBootFile } from './platform-fixture.js';

const ENTRY = 'loader/entries/ostree-1-debian.conf';
const SIZE_MIB = 256;
const SIZE = SIZE_MIB * MiB;
let dir: string;
let base: string;
let base4k: string;
let bootOffset: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cosa-platform-test-'));
  base = await makeBaseDisk({ dir, sizeMiB: SIZE_MIB, bootMiB: 64 });
  base4k = await makeBaseDisk({ dir, sizeMiB: SIZE_MIB, bootMiB: 64, sectorSize: 4096 });
  bootOffset = (await findBootPartition(base)).start;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function tarMembers(path: string, ...flags: string[]): Promise<string[]> {
  const r = await run(['tar', ...flags, '-tf', path]);
  return r.stdout.split('\n').filter(Boolean);
}

/** Extracts one member of a tar archive into `dest` (a directory). */
async function untar(path: string, dest: string, ...flags: string[]): Promise<void> {
  await mkdir(dest, { recursive: true });
  await run(['tar', ...flags, '-xf', path, '-C', dest]);
}

describe('setPlatform', () => {
  it('rewrites the platform id, kernel arguments and GRUB console block in the boot partition without root or mounts', async () => {
    const disk = join(dir, 'set.raw');
    await run(['cp', '--sparse=always', base, disk]);
    const r = await setPlatform({
      rawDisk: disk,
      platform: 'azure',
      kargs: ['console=ttyS0,115200n8', 'earlyprintk=ttyS0,115200', 'rootdelay=300'],
      grubCommands: [],
    });
    expect(r.previousPlatform).toBe('qemu');
    expect(r.changed.sort()).toEqual(['grub/grub.cfg', ENTRY]);
    const entry = await readBootFile(disk, ENTRY, bootOffset);
    expect(entry).toMatch(/^options .*ignition\.platform\.id=azure .*console=ttyS0,115200n8 earlyprintk=ttyS0,115200 rootdelay=300$/m);
    expect(entry).not.toContain('ignition.platform.id=qemu');
    const grub = await readBootFile(disk, 'grub/grub.cfg', bootOffset);
    expect(grub).toContain('ignition.platform.id=azure');
    expect(grub).toContain('# CONSOLE-SETTINGS-START\n# CONSOLE-SETTINGS-END');
    // the file system is clean and the rest of the disk untouched
    await run(['e2fsck', '-fn', `${disk}?offset=${bootOffset}`]);
    const stEntry = await run(['debugfs', '-R', `stat ${ENTRY}`, `${disk}?offset=${bootOffset}`]);
    expect(stEntry.stdout).toMatch(/Mode: +0644/);
    expect(stEntry.stdout).toMatch(/User: +0 +Group: +0/);
  });

  it('keeps extended attributes of the files it rewrites', async () => {
    const disk = join(dir, 'xattr.raw');
    await run(['cp', '--sparse=always', base, disk]);
    const dev = `${disk}?offset=${bootOffset}`;
    await run(['debugfs', '-w', '-R', `ea_set ${ENTRY} security.selinux system_u:object_r:boot_t:s0`, dev]);
    await setPlatform({ rawDisk: disk, platform: 'gcp', kargs: ['console=ttyS0,115200n8'] });
    const r = await run(['debugfs', '-R', `ea_get ${ENTRY} security.selinux`, dev]);
    expect(r.stdout).toContain('system_u:object_r:boot_t:s0');
    expect(await readBootFile(disk, ENTRY, bootOffset)).toContain('ignition.platform.id=gcp');
  });

  it('fails clearly on a disk without a GPT', async () => {
    const disk = join(dir, 'blank.raw');
    await run(['truncate', '-s', '10M', disk]);
    await expect(setPlatform({ rawDisk: disk, platform: 'aws', kargs: [] })).rejects.toMatchObject({ code: 'COSA_IMAGE_FAILED' });
  });
});

describe('derivePlatformImage', () => {
  const common = () => ({ name: 'testos', buildId: '1.0', arch: 'x86_64', tmpDir: join(dir, 'tmp'), output: join(dir, 'out') });
  const expected: Record<string, { format: string; extra?: (img: PlatformImage) => Promise<void> }> = {
    qemu: { format: 'qcow2' },
    metal: { format: 'raw' },
    aws: { format: 'vmdk' },
    azure: { format: 'vpc' },
    azurestack: { format: 'vpc' },
    openstack: { format: 'qcow2' },
    ibmcloud: { format: 'qcow2' },
    aliyun: { format: 'qcow2' },
    exoscale: { format: 'qcow2' },
    digitalocean: { format: 'qcow2' },
    oraclecloud: { format: 'qcow2' },
    proxmoxve: { format: 'qcow2' },
    nutanix: { format: 'qcow2' },
    hetzner: { format: 'raw' },
    vultr: { format: 'raw' },
    applehv: { format: 'raw' },
    hyperv: { format: 'vhdx' },
  };

  it('covers every platform of the table in these tests', () => {
    expect([...Object.keys(expected), 'gcp', 'vmware', 'virtualbox', 'metal4k'].sort()).toEqual(listPlatforms());
  });

  for (const [platform, want] of Object.entries(expected)) {
    it(`derives ${platform} as ${want.format} with the right virtual size and platform id`, async () => {
      const img = await derivePlatformImage({ ...common(), baseRaw: base, platform });
      expect(img.path).toBe(join(dir, 'out', `testos-1.0-${platform}.x86_64.${getPlatform(platform).extension}`));
      const info = await diskImageInfo(img.path, { format: want.format });
      // formats with a header are detected by probing too (raw and fixed VHD have none at the start)
      if (want.format !== 'raw' && want.format !== 'vpc') expect((await diskImageInfo(img.path)).format).toBe(want.format);
      expect(info.format).toBe(want.format);
      expect(info.virtualSize).toBe(SIZE);
      if (want.format === 'vpc') expect(info.virtualSize % MiB).toBe(0);
      expect(img.size).toBe((await stat(img.path)).size);
      expect(img.sha256).toBe(await sha256(img.path));
      expect(img.meta).toEqual({ path: `testos-1.0-${platform}.x86_64.${getPlatform(platform).extension}`, sha256: img.sha256, size: img.size, ...(platform === 'nutanix' ? { 'skip-compression': true } : {}) });
      // the platform id inside the image: read it back through a raw copy
      const back = want.format === 'raw' ? img.path : join(dir, `back-${platform}.raw`);
      if (back !== img.path) await run(['qemu-img', 'convert', '-f', want.format, '-O', 'raw', img.path, back]);
      const entry = await readBootFile(back, ENTRY, bootOffset);
      expect(entry).toContain(`ignition.platform.id=${getPlatform(platform).ignitionId} `);
      await rm(back, { force: true });
      await rm(img.path, { force: true });
    }, 60_000);
  }

  it('rounds the Azure VHD up to a whole MiB (force_size, fixed)', async () => {
    const odd = join(dir, 'odd.raw');
    await run(['cp', '--sparse=always', base, odd]);
    await run(['truncate', '-s', `${SIZE + 12345}`, odd]);
    const img = await derivePlatformImage({ ...common(), baseRaw: odd, platform: 'azure' });
    const info = await diskImageInfo(img.path, { format: 'vpc' });
    expect(info.format).toBe('vpc');
    expect(info.raw['virtual-size']).toBe((SIZE + MiB));
    expect(info.virtualSize).toBe((SIZE + MiB));
    expect(info.raw['format-specific']).toBeUndefined();
    // fixed VHD: the file is the disk plus a 512-byte footer
    expect(img.size).toBe((SIZE + MiB) + 512);
    await rm(img.path);
    await rm(odd);
  }, 60_000);

  it('packs gcp as a gzip tar (oldgnu, sparse) holding disk.raw, marked skip-compression', async () => {
    const img = await derivePlatformImage({ ...common(), baseRaw: base, platform: 'gcp' });
    expect(img.skipCompression).toBe(true);
    expect(img.meta['skip-compression']).toBe(true);
    expect(await tarMembers(img.path, '-z')).toEqual(['disk.raw']);
    const verbose = (await run(['tar', '-tvzf', img.path])).stdout;
    expect(verbose).toMatch(new RegExp(`^-\\S+ 0/0 +${SIZE} .* disk\\.raw$`, 'm'));
    // GNU sparse member in oldgnu format: type 'S' at header offset 156, magic "ustar  \0"
    const header = (await run(['sh', '-c', 'gzip -dc "$1" | head -c 512 | od -An -c -j 156 -N 1', 'sh', img.path])).stdout.trim();
    expect(header).toBe('S');
    const x = join(dir, 'gcp-x');
    await untar(img.path, x, '-z');
    expect((await diskImageInfo(join(x, 'disk.raw'))).virtualSize).toBe(SIZE);
    expect(await readBootFile(join(x, 'disk.raw'), ENTRY, bootOffset)).toContain('ignition.platform.id=gcp ');
    await rm(x, { recursive: true });
    await rm(img.path);
  }, 60_000);

  for (const flavor of ['vmware', 'virtualbox'] as const) {
    it(`packs ${flavor} as an OVA: the OVF descriptor first, then the streamOptimized vmdk`, async () => {
      const img = await derivePlatformImage({
        ...common(),
        baseRaw: base,
        platform: flavor,
        imageConfig: { 'vmware-hw-version': 17, 'vmware-os-type': 'fedora64Guest', 'vmware-secure-boot': false },
      });
      expect(await tarMembers(img.path)).toEqual(['testos-1.0.ovf', 'disk.vmdk']);
      const x = join(dir, `${flavor}-x`);
      await untar(img.path, x);
      const ovf = await readFile(join(x, 'testos-1.0.ovf'), 'utf8');
      const vmdk = join(x, 'disk.vmdk');
      const info = await diskImageInfo(vmdk);
      expect(info.format).toBe('vmdk');
      expect(info.virtualSize).toBe(SIZE);
      expect(JSON.stringify(info.raw)).toContain('streamOptimized');
      expect(ovf).toContain(`ovf:size="${(await stat(vmdk)).size}"`);
      expect(ovf).toContain(`ovf:capacity="${SIZE}"`);
      if (flavor === 'vmware') {
        expect(ovf).toContain('<vssd:VirtualSystemType>vmx-17</vssd:VirtualSystemType>');
        expect(ovf).toContain('vmw:osType="fedora64Guest"');
        expect(ovf).toContain('vmw:key="bootOptions.efiSecureBootEnabled" vmw:value="false"');
      }
      const back = join(x, 'back.raw');
      await run(['qemu-img', 'convert', '-O', 'raw', vmdk, back]);
      expect(await readBootFile(back, ENTRY, bootOffset)).toContain(`ignition.platform.id=${flavor} `);
      await rm(x, { recursive: true });
      await rm(img.path);
    }, 60_000);
  }

  it('derives metal4k only from a 4096-byte-sector disk, which it says it needs', async () => {
    expect(getPlatform('metal4k').needsOwnDisk).toEqual({ sectorSize: 4096, biosBoot: false });
    const err = await derivePlatformImage({ ...common(), baseRaw: base, platform: 'metal4k' }).catch((e: unknown) => e);
    expect(isCosaError(err, 'COSA_IMAGE_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/4096-byte sectors/);
    const img = await derivePlatformImage({ ...common(), baseRaw: base4k, platform: 'metal4k' });
    expect(img.path.endsWith('testos-1.0-metal4k.x86_64.raw')).toBe(true);
    const p = await findBootPartition(img.path);
    expect(p.sectorSize).toBe(4096);
    expect(await readBootFile(img.path, ENTRY, p.start)).toContain('ignition.platform.id=metal ');
    // and a 512-byte platform refuses the 4k disk
    await expect(derivePlatformImage({ ...common(), baseRaw: base4k, platform: 'qemu' })).rejects.toMatchObject({ code: 'COSA_IMAGE_FAILED' });
    await rm(img.path);
  }, 60_000);

  it('rejects an unknown platform before doing any work', async () => {
    await expect(derivePlatformImage({ ...common(), baseRaw: base, platform: 'amiga' })).rejects.toMatchObject({ code: 'COSA_PLATFORM_UNKNOWN' });
  });

  it('leaves no temp files behind in tmpDir or the output dir', async () => {
    const out = await readdir(join(dir, 'out'));
    expect(out.filter((f) => f.startsWith('.'))).toEqual([]);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });
});

describe('derivePlatformImages', () => {
  it('builds several platforms concurrently from one base disk (and reports the speed-up)', async () => {
    const opts = { name: 'testos', buildId: '2.0', arch: 'x86_64', tmpDir: join(dir, 'tmp'), baseRaw: base };
    const t0 = performance.now();
    for (const platform of ['aws', 'azure', 'gcp']) await derivePlatformImage({ ...opts, output: join(dir, 'ser'), platform });
    const serial = performance.now() - t0;
    const t1 = performance.now();
    const imgs = await derivePlatformImages({ ...opts, output: join(dir, 'par'), platforms: ['aws', 'azure', 'gcp'], concurrency: 3 });
    const parallel = performance.now() - t1;
    expect(imgs.map((i) => i.platform)).toEqual(['aws', 'azure', 'gcp']);
    expect((await readdir(join(dir, 'par'))).sort()).toEqual(['testos-2.0-aws.x86_64.vmdk', 'testos-2.0-azure.x86_64.vhd', 'testos-2.0-gcp.x86_64.tar.gz']);
    for (const img of imgs) {
      expect(img.sha256).toBe(await sha256(img.path));
      expect((await stat(join(dir, 'ser', basename(img.path)))).isFile()).toBe(true);
    }
    console.info(`derivePlatformImages aws+azure+gcp: serial ${serial.toFixed(0)} ms, concurrency 3 ${parallel.toFixed(0)} ms (${(parallel / serial).toFixed(2)}x)`);
  }, 120_000);

  it('fails on an unknown platform before building any', async () => {
    await expect(
      derivePlatformImages({ name: 't', buildId: '3', arch: 'x86_64', tmpDir: join(dir, 'tmp'), baseRaw: base, output: join(dir, 'none'), platforms: ['aws', 'nope'] }),
    ).rejects.toMatchObject({ code: 'COSA_PLATFORM_UNKNOWN' });
    await expect(stat(join(dir, 'none'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('stops the others and throws when one platform fails', async () => {
    const controller = new AbortController();
    const err = await derivePlatformImages({
      name: 't', buildId: '4', arch: 'x86_64', tmpDir: join(dir, 'tmp'), baseRaw: base, output: join(dir, 'fail'),
      platforms: ['qemu', 'metal4k'], baseRaw4k: join(dir, 'missing.raw'), concurrency: 2, signal: controller.signal,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });
});
