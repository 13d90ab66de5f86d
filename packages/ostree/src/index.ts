export { run, hasTool, missingTools, type RunOptions, type RunResult } from './_exec.js';
