/**
 * The list of vitest projects: one per package. vitest 4 no longer reads this file by itself,
 * so `vitest.config.ts` imports it and passes it as `test.projects`: this file stays the source.
 */
export const projects: string[] = ['packages/*'];
export default projects;
