import { runImage } from '@cosa/core';
import { CosaError } from '@cosa/schema';
import type { RegisterCommand } from '../_context.js';
import { parsePositiveInt } from './_util.js';

/** `cosa run`. */
export const registerRun: RegisterCommand = (program, ctx) => {
  program
    .command('run')
    .description("Boot the latest build's qemu image (snapshot mode) with the serial console on this terminal (Ctrl-a x quits)")
    .option('--build <id>', 'boot this build instead of the latest')
    .option('--qemu-image <file>', 'boot this image file')
    .option('-m, --memory <MiB>', 'guest memory', parsePositiveInt)
    .option('--cpus <n>', 'guest CPUs', parsePositiveInt)
    .option('--add-disk <size>', 'attach a blank disk of this size (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--uefi', 'boot with UEFI firmware (OVMF) instead of BIOS (the default for a 4096-byte-sector image)')
    .option('--check', 'do not attach: wait for the login prompt, exit 0 when it shows up, 1 otherwise')
    .option('--timeout <seconds>', 'with --check: give up after this long (default 300)', parsePositiveInt)
    .option('--pattern <regex>', 'with --check: what to wait for (default "login:")')
    .option('--json', 'with --check: print the result as JSON')
    .action(async (o: { build?: string; qemuImage?: string; memory?: number; cpus?: number; addDisk: string[]; uefi?: boolean; check?: boolean; timeout?: number; pattern?: string; json?: boolean }, cmd) => {
      const c = ctx(cmd);
      const r = await runImage({
        workdir: c.cwd,
        ...(o.build ? { build: o.build } : {}),
        ...(o.qemuImage ? { qemuImage: o.qemuImage } : {}),
        ...(o.memory ? { memoryMiB: o.memory } : {}),
        ...(o.cpus ? { cpus: o.cpus } : {}),
        addDisks: o.addDisk,
        ...(o.uefi ? { firmware: 'uefi' as const } : {}),
        ...(o.check ? { check: true } : {}),
        ...(o.timeout ? { timeoutMs: o.timeout * 1000 } : {}),
        ...(o.pattern ? { pattern: new RegExp(o.pattern) } : {}),
        signal: c.signal,
        onProgress: c.onProgress,
      });
      if (!o.check) return;
      if (!r.ok) {
        const code = r.reason === 'timeout' ? 'COSA_BOOT_TIMEOUT' : 'COSA_VM_FAILED';
        throw new CosaError(code, `no login prompt (${r.reason ?? 'failed'}) after ${(r.elapsedMs / 1000).toFixed(1)}s; console tail:\n${r.consoleTail ?? ''}`);
      }
      if (c.json) c.printJson({ ok: r.ok, image: r.image, elapsedMs: r.elapsedMs });
      else c.print(`Reached the login prompt in ${(r.elapsedMs / 1000).toFixed(1)}s (${r.image})`);
    });
};
