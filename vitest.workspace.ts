import { slowProject } from './vitest.shared.ts';

/**
 * The list of vitest projects: one per package, plus `slow` (real composes, disks and VM boots,
 * one file at a time). vitest 4 no longer reads this file by itself, so `vitest.config.ts`
 * imports it and passes it as `test.projects`: this file stays the source.
 */
export const projects = ['packages/*', slowProject];
export default projects;
