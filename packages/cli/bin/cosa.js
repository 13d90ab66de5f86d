#!/usr/bin/env node
// zod without its JIT: compiling a fast parser per object schema pays off over many parses, and
// a CLI call parses each config file once. Set through zod's shared global config before the
// bundle creates any schema (the CLI's process only; SDK users keep zod's default).
Object.assign((globalThis.__zod_globalConfig ??= {}), { jitless: true });

// The AWS SDK warns on every S3/EC2 command that its releases after January 2027 need Node 22;
// cosa pins an SDK that runs on 20.19+, so a CLI user cannot act on it. SDK users still see it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// The bundle (dist/cli/, see tsup.config.ts): a few files to load instead of ~370 modules.
const { main } = await import('../dist/cli/cosa.js');

// After main() returns nothing more is written; a late EPIPE must not become a stack trace.
for (const s of [process.stdout, process.stderr]) s.on('error', () => {});
process.exitCode = await main(process.argv.slice(2));
