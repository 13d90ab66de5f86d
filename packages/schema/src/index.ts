export * from './errors.js';
export * from './progress.js';
export { formatPath, parseJsonText, parseYamlText, stableStringify, validate, zodIssues } from './_json.js';
export * from './builds.js';
export * from './meta.js';
export * from './fs.js';
export * from './manifest.js';
export * from './image-config.js';
