export { kolaRun, planVms, type KolaRunOptions, type KolaRunResult } from './run.js';
export { kolaRunUpgrade, type KolaRunUpgradeOptions, type KolaRunUpgradeResult } from './upgrade.js';
export { discoverExternalTests, parseKolaMeta, globToRegExp, matchesPatterns, skipReason, type ExternalTest, type KolaTestMeta } from './tests.js';
export { writeKolaReports, toJUnitXml, overallResult, msToNs, type KolaReport, type KolaTestReport, type KolaResult } from './report.js';
export { basicChecks, type BasicCheck, type BasicExpectations } from './basic.js';
