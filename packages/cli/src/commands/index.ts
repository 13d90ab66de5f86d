import type { RegisterCommand } from '../_context.js';
import { registerBuild } from './build.js';
import { registerBuildExtend } from './buildextend.js';
import { registerBuildfetch } from './buildfetch.js';
import { registerBuildupload } from './buildupload.js';
import { registerClean } from './clean.js';
import { registerFetch } from './fetch.js';
import { registerInit } from './init.js';
import { registerKola } from './kola.js';
import { registerList } from './list.js';
import { registerManifest } from './manifest.js';
import { registerMeta } from './meta.js';
import { registerPrune } from './prune.js';
import { registerRun } from './run.js';
import { registerTag } from './tag.js';
import { registerAws } from './aws.js';
import { registerDiff } from './diff.js';
import { registerVerifyReproducible } from './verify-reproducible.js';

/** Every command module. Each file under commands/ registers its own subcommands. */
export const commands: RegisterCommand[] = [
  registerInit,
  registerFetch,
  registerBuild,
  registerBuildExtend,
  registerRun,
  registerList,
  registerMeta,
  registerTag,
  registerPrune,
  registerClean,
  registerManifest,
  registerBuildfetch,
  registerBuildupload,
  registerAws,
  registerKola,
  registerDiff,
  registerVerifyReproducible,
];
