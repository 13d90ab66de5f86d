import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturePath } from '@cosa/test-utils';
import { SchemaError, stableStringify } from '@cosa/schema';
import { loadImageConfig } from '@cosa/schema/internal';
import { caught, configDir } from './_config-dir.js';

describe('image.yaml', () => {
  it('loads the Fedora CoreOS image.yaml through its include with the defaults applied', async () => {
    const r = await loadImageConfig({ file: fixturePath('fcos-config', 'image.yaml') });
    expect(r.config.size).toBe(10);
    expect(r.config['vmware-hw-version']).toBe(17);
    expect(r.config['vmware-os-type']).toBe('fedora64Guest');
    expect(r.config.compressor).toBe('xz');
    expect(r.config['extra-kargs']).toEqual(['mitigations=auto,nosmt']);
    // Defaults (the original's image-default.yaml) fill what the config does not say.
    expect(r.config.bootfs).toBe('ext4');
    expect(r.config.rootfs).toBe('xfs');
    expect(r.config['ostree-format']).toBe('oci-chunked-v1');
    expect(r.config['aws-volume-type']).toBe('gp3');
    // Keys cosa does not type are kept.
    expect(r.config['ostree-remote']).toBe('fedora');
    expect(r.config['ignition-network-kcmdline']).toEqual([]);
    expect(r.config).not.toHaveProperty('include');
    expect(r.files).toEqual([fixturePath('fcos-config', 'image.yaml'), fixturePath('fcos-config', 'image-base.yaml')]);
    expect(r.rendered).toBe(stableStringify(r.config));
    const keys = Object.keys(JSON.parse(r.rendered) as object);
    expect(keys).toEqual([...keys].sort());
  });

  it('merges a chain of three: kernel argument lists appended (including file first), the including file wins otherwise', async () => {
    const dir = await configDir({
      'image.yaml': 'size: 20\nextra-kargs: [a]\ninclude: sub/mid.yaml\nignition-network-kcmdline: [ip=dhcp]\n',
      'sub/mid.yaml': 'size: 8\nrootfs: ext4\nextra-kargs: [b]\ninclude: ../base.yaml\nconsole: [ttyS0]\nx-map: {a: 1, nested: {p: 1}}\n',
      'base.yaml': 'extra-kargs: [c]\nbootfs: xfs\ncomposefs: true\nconsole: [hvc0]\nignition-network-kcmdline: [rd.neednet=1]\nx-map: {b: 2, nested: {p: 2, q: 2}}\n',
    });
    const r = await loadImageConfig({ file: join(dir, 'image.yaml') });
    expect(r.config.size).toBe(20);
    expect(r.config.rootfs).toBe('ext4');
    expect(r.config.bootfs).toBe('xfs');
    expect(r.config.composefs).toBe(true);
    expect(r.config['extra-kargs']).toEqual(['a', 'b', 'c']);
    expect(r.config['ignition-network-kcmdline']).toEqual(['ip=dhcp', 'rd.neednet=1']);
    expect(r.config.console).toEqual(['ttyS0']);
    expect(r.config['x-map']).toEqual({ a: 1, b: 2, nested: { p: 1, q: 2 } });
    expect(r.files.map((f) => f.slice(dir.length + 1))).toEqual(['image.yaml', 'sub/mid.yaml', 'base.yaml']);
  });

  it('renders the same bytes whatever the key order of the YAML', async () => {
    const a = await configDir({ 'image.yaml': 'size: 12\nrootfs: ext4\nextra-kargs: [x]\n' });
    const b = await configDir({ 'image.yaml': 'extra-kargs: [x]\nrootfs: ext4\nsize: 12\n' });
    const ra = await loadImageConfig({ file: join(a, 'image.yaml') });
    const rb = await loadImageConfig({ file: join(b, 'image.yaml') });
    expect(ra.rendered).toBe(rb.rendered);
    const sum = (s: string) => createHash('sha256').update(s).digest('hex');
    const c = await configDir({ 'image.yaml': 'size: 13\nrootfs: ext4\nextra-kargs: [x]\n' });
    expect(sum((await loadImageConfig({ file: join(c, 'image.yaml') })).rendered)).not.toBe(sum(ra.rendered));
    expect(ra.checksum).toBe(sum(ra.rendered));
    expect(ra.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it('names the file, the chain and the key of a wrong value in an included file', async () => {
    const dir = await configDir({ 'image.yaml': 'include: mid.yaml\n', 'mid.yaml': 'include: base.yaml\n', 'base.yaml': 'rootfs: zfs\n' });
    const e = await caught(() => loadImageConfig({ file: join(dir, 'image.yaml') }));
    expect(e).toBeInstanceOf(SchemaError);
    expect(e.file).toBe(join(dir, 'base.yaml'));
    const issue = (e as unknown as SchemaError).issues[0]!;
    expect(issue.path).toBe('rootfs');
    expect(issue.message).toContain('image.yaml → mid.yaml → base.yaml');
  });

  it('refuses a missing include and an include cycle', async () => {
    const missing = await configDir({ 'image.yaml': 'include: gone.yaml\n' });
    const e1 = await caught(() => loadImageConfig({ file: join(missing, 'image.yaml') }));
    expect(e1.code).toBe('COSA_CONFIG_INCLUDE');
    expect(e1.message).toContain('image.yaml → gone.yaml');
    const cycle = await configDir({ 'image.yaml': 'include: a.yaml\n', 'a.yaml': 'include: image.yaml\n' });
    const e2 = await caught(() => loadImageConfig({ file: join(cycle, 'image.yaml') }));
    expect(e2.code).toBe('COSA_CONFIG_INCLUDE');
    expect(e2.message).toContain('include cycle: image.yaml → a.yaml → image.yaml');
  });

  it('reports a missing image.yaml as missing config', async () => {
    const dir = await configDir({});
    const e = await caught(() => loadImageConfig({ file: join(dir, 'image.yaml') }));
    expect(e.code).toBe('COSA_CONFIG_MISSING');
  });

  it('refuses the keys of the original schema whose feature cosa does not build, naming file and key', async () => {
    const dir = await configDir({ 'image.yaml': 'deploy-via-container: true\ncontainer-imgref: ostree-remote-registry:fedora:quay.io/x\nbootc-install-to-fs: true\n' });
    const e = await caught(() => loadImageConfig({ file: join(dir, 'image.yaml') }));
    expect(e.code).toBe('COSA_SCHEMA_INVALID');
    expect(e.file).toBe(join(dir, 'image.yaml'));
    const issues = (e as unknown as SchemaError).issues;
    expect(issues.map((i) => i.path)).toEqual(['deploy-via-container', 'container-imgref', 'bootc-install-to-fs']);
    expect(issues[0]!.message).toMatch(/^not supported by cosa: /);
    // Their defaults (false, the original's values) are fine, and so is an explicit default.
    const ok = await configDir({ 'image.yaml': 'deploy-via-container: false\nostree-format: oci-chunked-v1\nsquashfs-compression: zstd\n' });
    expect((await loadImageConfig({ file: join(ok, 'image.yaml') })).config['deploy-via-container']).toBe(false);
    const fmt = await configDir({ 'image.yaml': 'squashfs-compression: gzip\n' });
    expect((await caught(() => loadImageConfig({ file: join(fmt, 'image.yaml') }))).message).toContain('squashfs-compression');
  });

  it('says the disk size is in GiB when size is 0, and checks the first-boot and remote keys', async () => {
    const zero = await configDir({ 'image.yaml': 'size: 0\n' });
    const e = await caught(() => loadImageConfig({ file: join(zero, 'image.yaml') }));
    expect(e.code).toBe('COSA_SCHEMA_INVALID');
    expect(e.message).toContain('size');
    expect(e.message).toContain('GiB');
    const net = await configDir({ 'image.yaml': "ignition-network-kcmdline: ['ip=dhcp rd.neednet=1']\n" });
    expect((await caught(() => loadImageConfig({ file: join(net, 'image.yaml') }))).message).toContain('ignition-network-kcmdline');
    const url = await configDir({ 'image.yaml': 'ostree-remote: fedora\nostree-remote-url: ftp://x/repo\n' });
    expect((await caught(() => loadImageConfig({ file: join(url, 'image.yaml') }))).message).toContain('ostree-remote-url');
    const good = await configDir({ 'image.yaml': 'ostree-remote: fedora\nostree-remote-url: http://10.0.2.2:8080/repo\ngrub-script: "blscfg\\n"\n' });
    const c = (await loadImageConfig({ file: join(good, 'image.yaml') })).config;
    expect(c['ostree-remote-url']).toBe('http://10.0.2.2:8080/repo');
    expect(c['grub-script']).toBe('blscfg\n');
  });
});
