import { kolaRun, kolaRunUpgrade, type KolaReport } from '@cosa/core';
import type { CommandContext, RegisterCommand } from '../_context.js';

function renderReport(c: CommandContext, report: KolaReport, extra: Record<string, unknown>): void {
  if (c.json) {
    c.printJson({ ...extra, result: report.result, tests: report.tests.map((t) => ({ name: t.name, result: t.result, durationMs: Math.round(t.duration / 1e6), subtests: t.subtests })) });
  } else {
    for (const t of report.tests) {
      c.print(`--- ${t.result}: ${t.name} (${(t.duration / 1e9).toFixed(1)}s)`);
      if (t.result === 'FAIL') for (const l of t.output.trimEnd().split('\n').slice(-15)) c.print(`        ${l}`);
    }
    c.print(`${report.result} (${report.tests.length} test(s), build ${report.version}); reports in ${String(extra.reportJson)}`);
  }
  if (report.result !== 'PASS') c.setExitCode(1);
}

/** `cosa kola run` and `cosa kola run-upgrade`. */
export const registerKola: RegisterCommand = (program, ctx) => {
  const kola = program.command('kola').description('Test builds in a booted VM: the config\'s tests/kola and basic checks, or an upgrade and rollback');
  kola
    .command('run')
    .description('Run the basic checks and the config\'s external tests (tests/kola/) in the booted image; exit 1 when a test fails')
    .argument('[patterns...]', 'glob patterns over test names (basic, ext.config.*); none: every test')
    .option('--build <id>', 'test this build instead of the latest')
    .option('--output-dir <dir>', 'where reports/report.json, reports/junit.xml and console logs go (default tmp/kola)')
    .option('--parallel <n>', 'VMs booted at once (default 1)', (v) => Number.parseInt(v, 10))
    .option('--boot-timeout <seconds>', 'deadline of each boot to a root shell (default 600)', (v) => Number.parseInt(v, 10))
    .option('--json', 'print the result as JSON')
    .action(async (patterns: string[], o: { build?: string; outputDir?: string; parallel?: number; bootTimeout?: number }, cmd) => {
      const c = ctx(cmd);
      const r = await kolaRun({
        workdir: c.cwd,
        patterns,
        ...(o.build ? { build: o.build } : {}),
        ...(o.outputDir ? { outputDir: o.outputDir } : {}),
        ...(o.parallel ? { parallel: o.parallel } : {}),
        ...(o.bootTimeout ? { bootTimeoutMs: o.bootTimeout * 1000 } : {}),
        signal: c.signal,
        onProgress: c.onProgress,
      });
      renderReport(c, r.report, { reportJson: r.reportJson, junitXml: r.junitXml, outputDir: r.outputDir, vms: r.vms });
    });
  kola
    .command('run-upgrade')
    .description('Boot FROM, upgrade to TO over a local HTTP OSTree repo, reboot, check, roll back, reboot, check; exit 1 when a step fails')
    .requiredOption('--from <id>', 'the build to boot first')
    .option('--to <id>', 'the build to upgrade to (default the latest)')
    .option('--output-dir <dir>', 'where reports and the console log go (default tmp/kola-upgrade)')
    .option('--boot-timeout <seconds>', 'deadline of each boot to a root shell (default 600)', (v) => Number.parseInt(v, 10))
    .option('--json', 'print the result as JSON')
    .action(async (o: { from: string; to?: string; outputDir?: string; bootTimeout?: number }, cmd) => {
      const c = ctx(cmd);
      const r = await kolaRunUpgrade({
        workdir: c.cwd,
        from: o.from,
        ...(o.to ? { to: o.to } : {}),
        ...(o.outputDir ? { outputDir: o.outputDir } : {}),
        ...(o.bootTimeout ? { bootTimeoutMs: o.bootTimeout * 1000 } : {}),
        signal: c.signal,
        onProgress: c.onProgress,
      });
      renderReport(c, r.report, { reportJson: r.reportJson, junitXml: r.junitXml, outputDir: r.outputDir, consoleLog: r.consoleLog });
    });
};
