#!/usr/bin/env node
import { main } from '../dist/index.js';

// After main() returns nothing more is written; a late EPIPE must not become a stack trace.
for (const s of [process.stdout, process.stderr]) s.on('error', () => {});
process.exitCode = await main(process.argv.slice(2));
