import { defineProject } from 'vitest/config';
import { sharedProject } from '../../vitest.shared.ts';

const shared = sharedProject('@cosa/cli');
// @actions/workflow-parser (examples-ci.test.ts) imports its JSON schema without an import
// attribute, which Node refuses: let vitest transform it instead of loading it natively.
export default defineProject({ ...shared, test: { ...shared.test, server: { deps: { inline: ['@actions/workflow-parser'] } } } });
