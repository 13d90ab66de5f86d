import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturePath } from '@cosa/test-utils';
import { flattenTreefile, SchemaError, serializeManifest } from '@cosa/schema';
import { ConfigFileError } from '../src/_config-io.js';
import { caught, configDir, copyDir, snapshot } from './_config-dir.js';

const fcos = fixturePath('fcos-config', 'manifest.yaml');

function indexOfScript(scripts: string[] | undefined, needle: string): number {
  const i = (scripts ?? []).findIndex((s) => s.includes(needle));
  expect(i, `a postprocess script containing ${needle}`).toBeGreaterThanOrEqual(0);
  return i;
}

describe('flattening the Fedora CoreOS config', () => {
  it('resolves includes, variables and conditional includes for x86_64', async () => {
    const { manifest: m, files, unknownKeys } = await flattenTreefile({ file: fcos, arch: 'x86_64' });
    expect(m.ref).toBe('fedora/x86_64/coreos/testing-devel');
    expect(m.rojig).toEqual({ name: 'fedora-coreos', summary: 'Fedora CoreOS testing-devel', license: 'MIT' });
    expect(m['automatic-version-prefix']).toBe('40.<date:%Y%m%d>.dev');
    expect(m['mutate-os-release']).toBe('40');
    expect(m['add-commit-metadata']).toEqual({ 'fedora-coreos.stream': 'testing-devel' });
    expect(m.releasever).toBe(40);
    expect(m.repos).toEqual(['fedora', 'fedora-updates']);
    expect(m['lockfile-repos']).toEqual(['fedora-coreos-pool']);
    // From files two and three includes deep, whitespace-split, and packages-x86_64 folded in.
    expect(m.packages).toEqual(expect.arrayContaining(['kernel', 'rpm-ostree', 'nss-altfiles', 'ignition', 'podman', 'fedora-release-coreos']));
    expect(m.packages).toEqual(expect.arrayContaining(['grub2-efi-x64', 'microcode_ctl', 'amd-ucode-firmware', 'irqbalance']));
    expect(m.packages).not.toContain('grub2-efi-aa64');
    expect(m.packages).not.toContain('qemu-user-static-x86');
    expect(m.packages?.some((p) => /\s/.test(p))).toBe(false);
    expect(m).not.toHaveProperty('packages-x86_64');
    expect(m).not.toHaveProperty('include');
    expect(m).not.toHaveProperty('conditional-include');
    // releasever 40: `releasever < 41` includes are taken, `>= 41` ones are not.
    expect(m['exclude-packages']).toEqual(expect.arrayContaining(['dnf', 'dnf5', 'python3', 'kernel-debug-core']));
    expect(m.packages).toContain('atheros-firmware');
    expect(m.packages).not.toContain('dnf5');
    expect(m['ostree-layers']).not.toContain('overlay/08composefs');
    // prod == false → disable-zincati.yaml; basearch != "s390x" → grub2-removals.yaml.
    expect(m['ostree-layers']).toEqual(expect.arrayContaining(['overlay/16disable-zincati', 'overlay/15fcos', 'overlay/05core', 'overlay/07fix-selinux-labels']));
    expect(m['remove-from-packages']?.map((r) => r[0])).toEqual(expect.arrayContaining(['grub2-tools', 'systemd', 'cracklib-dicts']));
    // Scalars from included files survive when the including file does not set them.
    expect(m['boot-location']).toBe('modules');
    expect(m.recommends).toBe(false);
    expect(m['machineid-compat']).toBe(false);
    expect(unknownKeys).toEqual([]);
    const rel = files.map((f) => f.slice(fixturePath('fcos-config').length + 1));
    expect(rel[0]).toBe('manifest.yaml');
    expect(rel[1]).toBe('manifests/fedora-coreos.yaml');
    expect(rel).toContain('manifests/kernel.yaml');
    expect(rel).toContain('manifests/wifi-firmwares.yaml');
    expect(rel).not.toContain('manifests/include-dnf.yaml');
    expect(rel).not.toContain('manifests/composefs.yaml');
    expect(new Set(rel).size).toBe(rel.length);
  });

  it('orders postprocess scripts as rpm-ostree: includes first, later includes before earlier ones', async () => {
    const { manifest: m } = await flattenTreefile({ file: fcos, arch: 'x86_64' });
    const pp = m.postprocess;
    // fedora-coreos-base.yaml includes [..., system-configuration, ignition-and-ostree, ..., bootupd].
    const bootupd = indexOfScript(pp, 'bootupctl backend generate-update-metadata');
    const ignition = indexOfScript(pp, 'systemctl --user --global preset-all');
    const sysconf = indexOfScript(pp, 'systemctl mask systemd-repart.service');
    const base = indexOfScript(pp, 'setsebool -P -N container_use_cephfs on');
    const top = indexOfScript(pp, '95-disable-on-dev.toml');
    expect(bootupd).toBeLessThan(ignition);
    expect(ignition).toBeLessThan(sysconf);
    expect(sysconf).toBeLessThan(base);
    expect(base).toBeLessThan(top);
  });

  it('resolves aarch64 packages and ref', async () => {
    const { manifest: m } = await flattenTreefile({ file: fcos, arch: 'aarch64' });
    expect(m.ref).toBe('fedora/aarch64/coreos/testing-devel');
    expect(m.packages).toEqual(expect.arrayContaining(['grub2-efi-aa64', 'efibootmgr', 'shim', 'qemu-user-static-x86', 'kernel']));
    expect(m.packages).not.toContain('grub2-efi-x64');
    expect(m.packages).not.toContain('microcode_ctl');
    expect(m.packages).not.toContain('amd-ucode-firmware');
  });

  it('skips the basearch != "s390x" include on s390x and folds packages-s390x', async () => {
    const { manifest: m } = await flattenTreefile({ file: fcos, arch: 's390x' });
    expect(m.ref).toBe('fedora/s390x/coreos/testing-devel');
    expect(m['remove-from-packages']?.map((r) => r[0])).not.toContain('grub2-tools');
    expect(m.packages).toEqual(expect.arrayContaining(['/usr/sbin/zipl', 'veritysetup', 'qemu-user-static-x86']));
  });

  it('takes the releasever >= 41 includes when releasever is 41', async () => {
    const dir = await copyDir(fixturePath('fcos-config'));
    const file = join(dir, 'manifest.yaml');
    await writeFile(file, (await readFile(file, 'utf8')).replace('releasever: 40', 'releasever: 41'));
    const { manifest: m, files } = await flattenTreefile({ file, arch: 'x86_64' });
    expect(m.packages).toContain('dnf5');
    expect(m.packages).not.toContain('atheros-firmware');
    expect(m['exclude-packages']).not.toContain('dnf');
    expect(m['ostree-layers']).toContain('overlay/08composefs');
    expect(m['automatic-version-prefix']).toBe('41.<date:%Y%m%d>.dev');
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(expect.arrayContaining(['manifests/include-dnf.yaml', 'manifests/selinux-workaround.yaml']));
  });

  it('lets a variable override change which conditional includes are taken', async () => {
    const { manifest: m } = await flattenTreefile({ file: fcos, arch: 'x86_64', variables: { prod: true, stream: 'stable' } });
    expect(m['ostree-layers']).not.toContain('overlay/16disable-zincati');
    expect(m.ref).toBe('fedora/x86_64/coreos/stable');
    expect(m.variables).toEqual({ basearch: 'x86_64', releasever: 40, stream: 'stable', prod: true });
  });

  it('reads nothing but the treefiles and writes nothing', async () => {
    const dir = await copyDir(fixturePath('fcos-config'));
    const before = await snapshot(dir);
    await flattenTreefile({ file: join(dir, 'manifest.yaml'), arch: 'x86_64' });
    expect(await snapshot(dir)).toEqual(before);
  });

  it('renders the flattened manifest as YAML and as stable JSON', async () => {
    const { manifest } = await flattenTreefile({ file: fcos, arch: 'x86_64' });
    const json = serializeManifest(manifest, 'json');
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(manifest)));
    expect(json.indexOf('"add-commit-metadata"')).toBeLessThan(json.indexOf('"ref"'));
    expect(serializeManifest(manifest, 'yaml')).toContain('ref: fedora/x86_64/coreos/testing-devel');
  });
});

describe('treefile merge rules', () => {
  it('lets the including file win for scalars, the first include among siblings, and concatenates lists', async () => {
    const dir = await configDir({
      'top.yaml': [
        'include: [a.yaml, b.yaml]',
        'ref: top/ref',
        'packages: [top-pkg, shared]',
        'postprocess: [top]',
        'add-commit-metadata: {k1: top, k3: top}',
        'ignore-removed-users: [root]',
      ].join('\n'),
      'a.yaml': ['ref: a/ref', 'recommends: false', 'packages: [z-pkg, shared]', 'postprocess: [a]', 'add-commit-metadata: {k1: a, k2: a}', 'ignore-removed-users: [root, adm]'].join('\n'),
      'b.yaml': ['recommends: true', 'documentation: false', 'packages: [b-pkg]', 'postprocess: [b]'].join('\n'),
    });
    const { manifest: m } = await flattenTreefile({ file: join(dir, 'top.yaml'), arch: 'x86_64' });
    expect(m.ref).toBe('top/ref');
    expect(m.recommends).toBe(false);
    expect(m.documentation).toBe(false);
    // packages and ignore-removed-* are sets in rpm-ostree: merged, sorted, no duplicates.
    expect(m.packages).toEqual(['b-pkg', 'shared', 'top-pkg', 'z-pkg']);
    expect(m['ignore-removed-users']).toEqual(['adm', 'root']);
    expect(m.postprocess).toEqual(['b', 'a', 'top']);
    expect(m['add-commit-metadata']).toEqual({ k1: 'top', k2: 'a', k3: 'top' });
  });

  it('takes arch-include only for the target arch and after include', async () => {
    const dir = await configDir({
      'm.yaml': ['include: common.yaml', 'arch-include:', '  x86_64: x86.yaml', '  s390x: [s390x.yaml, more.yaml]'].join('\n'),
      'common.yaml': 'remove-files: [common]\n',
      'x86.yaml': 'remove-files: [x86-only]\n',
      's390x.yaml': 'remove-files: [zipl]\n',
      'more.yaml': 'remove-files: [s390utils]\n',
    });
    const x = await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' });
    expect(x.manifest['remove-files']).toEqual(['x86-only', 'common']);
    const z = await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 's390x' });
    expect(z.manifest['remove-files']).toEqual(['s390utils', 'zipl', 'common']);
    expect(z.files.map((f) => f.slice(dir.length + 1))).toEqual(['m.yaml', 'common.yaml', 's390x.yaml', 'more.yaml']);
  });

  it('evaluates every operator over booleans, numbers and quoted strings, all conditions of a list must hold', async () => {
    const dir = await configDir({
      'm.yaml': [
        'releasever: 39',
        'variables: {dev: true, stream: "next", level: 2.5}',
        'conditional-include:',
        '  - {if: dev == true, include: t1.yaml}',
        '  - {if: dev != true, include: f1.yaml}',
        '  - {if: stream == "next", include: t2.yaml}',
        "  - {if: \"stream != 'next'\", include: f2.yaml}",
        '  - {if: [releasever >= 39, releasever <= 39, level > 2, level < 3], include: t3.yaml}',
        '  - {if: [releasever > 38, releasever < 39], include: f3.yaml}',
        '  - {if: basearch == "ppc64le", include: [t4.yaml, t5.yaml]}',
      ].join('\n'),
      ...Object.fromEntries(['t1', 'f1', 't2', 'f2', 't3', 'f3', 't4', 't5'].map((n) => [`${n}.yaml`, `packages: [${n}]\n`])),
    });
    const { manifest: m } = await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'ppc64le' });
    expect([...(m.packages ?? [])].sort()).toEqual(['t1', 't2', 't3', 't4', 't5']);
  });

  it('substitutes variables defined in an included file and passes variables down to included conditionals', async () => {
    const dir = await configDir({
      'm.yaml': ['variables: {stream: rawhide}', 'releasever: "42"', 'include: sub/os.yaml'].join('\n'),
      'sub/os.yaml': [
        'variables: {osname: myos, stream: ignored}',
        'ref: ${osname}/${basearch}/${stream}/${releasever}',
        'mutate-os-release: "${releasever}"',
        'conditional-include:',
        '  - {if: releasever >= 42, include: ../new.yaml}',
        '  - {if: stream == "rawhide", include: raw.yaml}',
      ].join('\n'),
      'new.yaml': 'packages: [new]\n',
      'sub/raw.yaml': 'packages: [raw]\n',
    });
    const { manifest: m } = await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'riscv64' });
    expect(m.ref).toBe('myos/riscv64/rawhide/42');
    expect(m['mutate-os-release']).toBe('42');
    expect(m.variables).toEqual({ basearch: 'riscv64', osname: 'myos', releasever: '42', stream: 'rawhide' });
    expect([...(m.packages ?? [])].sort()).toEqual(['new', 'raw']);
  });

  it('evaluates conditions when the file is read: a later include sees earlier variables, a file not those of its own includes', async () => {
    const dir = await configDir({
      'm.yaml': 'include: [defs.yaml, use.yaml]\n',
      'defs.yaml': 'variables: {flavor: "big"}\n',
      'use.yaml': 'conditional-include:\n  - {if: flavor == "big", include: big.yaml}\n',
      'big.yaml': 'packages: [big]\n',
    });
    expect((await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' })).manifest.packages).toEqual(['big']);
    const own = await configDir({
      'm.yaml': 'include: defs.yaml\nconditional-include:\n  - {if: flavor == "big", include: big.yaml}\n',
      'defs.yaml': 'variables: {flavor: "big"}\n',
      'big.yaml': 'packages: [big]\n',
    });
    const e = await caught(() => flattenTreefile({ file: join(own, 'm.yaml'), arch: 'x86_64' }));
    expect(e.code).toBe('COSA_CONFIG_VARIABLE');
  });

  it('merges an inline conditional include into the including file', async () => {
    const dir = await configDir({
      'm.yaml': [
        'packages: [base]',
        'remove-files: [own]',
        'conditional-include:',
        '  - if: basearch == "aarch64"',
        '    include: {packages: [arm-extra], remove-files: [inline], recommends: true}',
      ].join('\n'),
    });
    const arm = await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'aarch64' });
    expect(arm.manifest.packages).toEqual(['arm-extra', 'base']);
    expect(arm.manifest['remove-files']).toEqual(['inline', 'own']);
    expect(arm.manifest.recommends).toBe(true);
    const x86 = await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' });
    expect(x86.manifest.packages).toEqual(['base']);
  });

  it('refuses a definition of the reserved variables basearch and releasever', async () => {
    const dir = await configDir({ 'm.yaml': 'include: a.yaml\n', 'a.yaml': 'variables: {basearch: ppc64le}\n' });
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
    expect(e.file).toBe(join(dir, 'a.yaml'));
    expect((e as unknown as SchemaError).issues[0]?.path).toBe('variables.basearch');
  });

  it('keeps a single-quoted package entry whole and splits the others on whitespace', async () => {
    const dir = await configDir({ 'm.yaml': `packages:\n  - "a  b\\tc"\n  - "'podman >= 4.1'"\n` });
    const { manifest: m } = await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' });
    expect([...(m.packages ?? [])].sort()).toEqual(['a', 'b', 'c', 'podman >= 4.1']);
  });

  it('reports unknown keys, keeps them, and refuses them with strict', async () => {
    const dir = await configDir({ 'm.yaml': 'include: inc.yaml\nref: r\nfrobnicate: 3\n', 'inc.yaml': 'some-new-key: [x]\n' });
    const r = await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' });
    expect(r.unknownKeys).toEqual(['frobnicate', 'some-new-key']);
    expect(r.manifest.frobnicate).toBe(3);
    expect(r.manifest['some-new-key']).toEqual(['x']);
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64', strict: true }));
    expect(e).toBeInstanceOf(SchemaError);
    expect(e.code).toBe('COSA_CONFIG_UNKNOWN_KEY');
    expect((e as unknown as SchemaError).issues.map((i) => i.path)).toEqual(['frobnicate', 'some-new-key']);
    expect((e as unknown as SchemaError).issues[1]?.message).toContain('inc.yaml');
  });

  it('accepts the legacy underscore spellings of keys', async () => {
    const dir = await configDir({ 'm.yaml': 'boot_location: modules\nautomatic_version_prefix: "1.${basearch}"\n' });
    const { manifest: m, unknownKeys } = await flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' });
    expect(m['boot-location']).toBe('modules');
    expect(m['automatic-version-prefix']).toBe('1.x86_64');
    expect(unknownKeys).toEqual([]);
  });

  it('reads a JSON treefile and lists the external files it names', async () => {
    const dir = await configDir({
      'tf.json': JSON.stringify({ ref: 'a', include: 'sub/b.yaml', 'postprocess-script': 'post.sh' }),
      'sub/b.yaml': 'add-files: [[motd, /etc/motd]]\ncheck-passwd: {type: file, filename: passwd}\n',
    });
    const r = await flattenTreefile({ file: join(dir, 'tf.json'), arch: 'x86_64' });
    expect(r.manifest.ref).toBe('a');
    expect(r.externals).toEqual([join(dir, 'post.sh'), join(dir, 'sub/motd'), join(dir, 'sub/passwd')]);
  });
});

describe('treefile errors', () => {
  it('names the include chain when an included file is missing', async () => {
    const dir = await configDir({ 'm.yaml': 'include: a.yaml\n', 'a.yaml': 'include: [b.yaml, nope.yaml]\n', 'b.yaml': '{}\n' });
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
    expect(e).toBeInstanceOf(ConfigFileError);
    expect(e.code).toBe('COSA_CONFIG_INCLUDE');
    expect(e.file).toBe(join(dir, 'a.yaml'));
    expect(e.message).toContain('include[1]');
    expect(e.message).toContain('m.yaml → a.yaml → nope.yaml');
    expect(e.chain).toEqual([join(dir, 'm.yaml'), join(dir, 'a.yaml'), join(dir, 'nope.yaml')]);
  });

  it('detects an include cycle and names it', async () => {
    const dir = await configDir({ 'm.yaml': 'include: a.yaml\n', 'a.yaml': 'include: sub/b.yaml\n', 'sub/b.yaml': 'include: ../a.yaml\n' });
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
    expect(e.code).toBe('COSA_CONFIG_INCLUDE');
    expect(e.message).toContain('include cycle: m.yaml → a.yaml → sub/b.yaml → a.yaml');
  });

  it('refuses a file included twice, as rpm-ostree does', async () => {
    const dir = await configDir({ 'm.yaml': 'include: [a.yaml, b.yaml]\n', 'a.yaml': 'include: c.yaml\n', 'b.yaml': 'include: c.yaml\n', 'c.yaml': '{}\n' });
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
    expect(e.code).toBe('COSA_CONFIG_INCLUDE');
    expect(e.message).toContain('c.yaml is included more than once');
    expect(e.message).toContain('m.yaml → b.yaml → c.yaml');
  });

  it('names the file and the expression of a condition over an undefined variable', async () => {
    const dir = await configDir({
      'm.yaml': 'variables: {stream: x}\ninclude: a.yaml\n',
      'a.yaml': 'conditional-include:\n  - if: strem == "x"\n    include: b.yaml\n',
      'b.yaml': '{}\n',
    });
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
    expect(e.code).toBe('COSA_CONFIG_VARIABLE');
    expect(e.file).toBe(join(dir, 'a.yaml'));
    expect(e.message).toContain('conditional-include[0].if');
    expect(e.message).toContain('strem == "x"');
    expect(e.message).toContain("undefined variable 'strem'");
    expect(e.message).toContain('m.yaml → a.yaml');
  });

  it('refuses a malformed condition and an unquoted string value', async () => {
    for (const cond of ['stream', 'stream = "x"', 'stream == x', 'flag < true']) {
      const dir = await configDir({ 'm.yaml': `variables: {stream: x, flag: true}\nconditional-include:\n  - if: '${cond}'\n    include: b.yaml\n` });
      const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
      expect(e.code, cond).toBe('COSA_SCHEMA_INVALID');
      expect(e.message).toContain(cond);
    }
  });

  it('names the file, the include chain and the key of a type error deep in an included file', async () => {
    const dir = await configDir({
      'm.yaml': 'include: a.yaml\n',
      'a.yaml': 'conditional-include:\n  - if: basearch == "x86_64"\n    include: deep/c.yaml\n',
      'deep/c.yaml': 'packages: [ok, 42]\n',
    });
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
    expect(e).toBeInstanceOf(SchemaError);
    expect(e.code).toBe('COSA_SCHEMA_INVALID');
    expect(e.file).toBe(join(dir, 'deep/c.yaml'));
    const issue = (e as unknown as SchemaError).issues[0]!;
    expect(issue.path).toBe('packages[1]');
    expect(issue.message).toContain('m.yaml → a.yaml → deep/c.yaml');
  });

  it('rejects a packages-<arch> that is not a list of strings, for any arch', async () => {
    const dir = await configDir({ 'm.yaml': 'packages-s390x: zipl\n' });
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
    expect((e as unknown as SchemaError).issues[0]?.path).toBe('packages-s390x');
  });

  it('names the file of a YAML syntax error in an included file', async () => {
    const dir = await configDir({ 'm.yaml': 'include: a.yaml\n', 'a.yaml': 'packages: [a\nref: : :\n' });
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
    expect(e.code).toBe('COSA_SCHEMA_PARSE');
    expect(e.file).toBe(join(dir, 'a.yaml'));
    expect(e.message).toContain('m.yaml → a.yaml');
  });

  it('names the file and key of a substitution of an undefined variable', async () => {
    const dir = await configDir({ 'm.yaml': 'include: a.yaml\n', 'a.yaml': 'ref: os/${basearch}/${stream}\n' });
    const e = await caught(() => flattenTreefile({ file: join(dir, 'm.yaml'), arch: 'x86_64' }));
    expect(e.code).toBe('COSA_CONFIG_VARIABLE');
    expect(e.file).toBe(join(dir, 'a.yaml'));
    expect(e.message).toContain('ref');
    expect(e.message).toContain('${stream}');
    expect(e.message).toContain('m.yaml → a.yaml');
    expect(e.chain).toEqual([join(dir, 'm.yaml'), join(dir, 'a.yaml')]);
  });

  it('reports a missing top-level treefile as missing config', async () => {
    const dir = await configDir({});
    const e = await caught(() => flattenTreefile({ file: join(dir, 'manifest.yaml'), arch: 'x86_64' }));
    expect(e.code).toBe('COSA_CONFIG_MISSING');
  });
});

describe('hostile keys', () => {
  it('keeps a __proto__ key of a treefile a key, never the prototype of the merged manifest', async () => {
    const dir = await configDir({
      'manifest.yaml': '__proto__:\n  ref: evil\n  packages: [evil]\nref: good\ninclude: inc.yaml\npackages: [a]\n',
      'inc.yaml': '__proto__:\n  releasever: 666\nadd-commit-metadata:\n  __proto__:\n    x: 1\npackages: [b]\n',
    });
    const { manifest, unknownKeys } = await flattenTreefile({ file: join(dir, 'manifest.yaml'), arch: 'x86_64' });
    expect(manifest.ref).toBe('good');
    expect([...(manifest.packages ?? [])].sort()).toEqual(['a', 'b']);
    expect(manifest.releasever).toBeUndefined();
    expect(Object.getPrototypeOf(manifest)).toBe(Object.prototype);
    expect(unknownKeys.join(' ')).toContain('__proto__');
    expect(({} as Record<string, unknown>).ref).toBeUndefined();
  });
});
