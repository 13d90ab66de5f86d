#!/usr/bin/env node
// Counts the names each public package exports from its entry point (src/index.ts), with the
// TypeScript checker (so `export *` is followed). Usage: node scripts/count-exports.mjs [--list]
// Needs only the workspace's devDependencies (typescript); no build.
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const list = process.argv.includes('--list');
const pkgs = readdirSync(join(root, 'packages')).filter((p) => p !== 'test-utils' && existsSync(join(root, 'packages', p, 'src', 'index.ts')));
const entries = pkgs.map((p) => join(root, 'packages', p, 'src', 'index.ts'));
const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
const program = ts.createProgram(entries, { ...config.options, noEmit: true });
const checker = program.getTypeChecker();
let total = 0;
const rows = [];
for (const [i, p] of pkgs.entries()) {
  const sf = program.getSourceFile(entries[i]);
  const sym = sf && checker.getSymbolAtLocation(sf);
  const names = sym ? checker.getExportsOfModule(sym).map((s) => s.getName()).sort() : [];
  total += names.length;
  rows.push([`@cosa/${p}`, names.length]);
  if (list) console.log(`@cosa/${p}: ${names.join(', ')}\n`);
}
console.log('package          exported names');
for (const [p, n] of rows) console.log(`${p.padEnd(16)} ${String(n).padStart(5)}`);
console.log(`${'total'.padEnd(16)} ${String(total).padStart(5)}`);
