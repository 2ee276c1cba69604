#!/usr/bin/env node
// The API reports of @consul-ecs-ts/core: api/core.api.md (the package's main
// entry) and api/core-testkit.api.md (its testkit), written by API Extractor
// from the built declarations (packages/core/dist), so that every change to
// what users can import is seen, and approved, in review.
//
// Usage: node api/report.mjs --check    fails when the built surface differs from a report
//        node api/report.mjs --update   rewrites the reports
// Both read packages/core/dist: build it first (npm run api:check does); exit
// status 3 says it is missing or older than packages/core/src.
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const core = join(root, 'packages/core');
const apiDir = join(root, 'api');
const tempDir = join(root, 'node_modules/.cache/api-extractor');

const REPORTS = [
  { name: 'core', entry: 'dist/index.d.ts' },
  { name: 'core-testkit', entry: 'dist/testkit/index.d.ts' },
];

const mode = process.argv[2];
if (mode !== '--check' && mode !== '--update') {
  console.error('usage: node api/report.mjs --check|--update');
  process.exit(2);
}
const update = mode === '--update';

// Declarations older than a source file describe another API than the source's.
const newestSource = (dir) =>
  readdirSync(dir).reduce((newest, name) => {
    const p = join(dir, name);
    const s = statSync(p);
    return Math.max(newest, s.isDirectory() ? newestSource(p) : s.mtimeMs);
  }, 0);
for (const { entry } of REPORTS) {
  const dts = join(core, entry);
  let built;
  try {
    built = statSync(dts).mtimeMs;
  } catch {
    console.error(`api: ${dts} is missing; build core first (npm run build -w packages/core)`);
    process.exit(3);
  }
  if (built < newestSource(join(core, 'src'))) {
    console.error(`api: ${dts} is older than packages/core/src; build core first (npm run build -w packages/core)`);
    process.exit(3);
  }
}

mkdirSync(tempDir, { recursive: true });
let failed = false;
for (const { name, entry } of REPORTS) {
  const config = ExtractorConfig.prepare({
    configObject: {
      projectFolder: core,
      mainEntryPointFilePath: join(core, entry),
      newlineKind: 'lf',
      compiler: {
        overrideTsconfig: {
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            lib: ['ES2023'],
            types: ['node'],
            strict: true,
            skipLibCheck: true,
          },
        },
      },
      apiReport: { enabled: true, reportFileName: name, reportFolder: apiDir, reportTempFolder: tempDir },
      docModel: { enabled: false },
      dtsRollup: { enabled: false },
      tsdocMetadata: { enabled: false },
      messages: {
        // Nothing is marked @public, @beta…: whatever the entry exports is public.
        extractorMessageReporting: { 'ae-missing-release-tag': { logLevel: 'none' } },
        // The doc comments are written for readers, not checked as TSDoc.
        tsdocMessageReporting: { default: { logLevel: 'none' } },
      },
    },
    configObjectFullPath: join(apiDir, 'report.mjs'),
    packageJsonFullPath: join(core, 'package.json'),
  });
  // Problems other than the report's own change: a public signature using a type
  // the entry does not export (ae-forgotten-export), a doc link to an internal name…
  const problems = [];
  const result = Extractor.invoke(config, {
    localBuild: update,
    messageCallback: (message) => {
      if (message.messageId === 'console-preamble') message.handled = true;
      else if ((message.logLevel === 'error' || message.logLevel === 'warning') && !message.messageId.startsWith('console-api-report')) {
        problems.push(message.messageId);
      }
    },
  });
  const report = `api/${name}.api.md`;
  if (result.apiReportChanged && !update) {
    console.error(
      `api: the public API of ${entry} differs from ${report} (the new one is in ${join(tempDir, `${name}.api.md`)}).\n` +
        '     An export was added, removed or changed. If that is intended, run npm run api:update and commit the report;\n' +
        "     if not, restore the export (a module's helper goes public only through packages/core/src/index.ts).",
    );
    failed = true;
  } else if (result.apiReportChanged) {
    console.log(`api: ${report} rewritten: review the change and commit it`);
  } else {
    console.log(`api: ${report} is up to date`);
  }
  if (problems.length || (!result.succeeded && !result.apiReportChanged)) {
    console.error(`api: ${entry}: ${problems.length} problems (above): ${[...new Set(problems)].join(', ')}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
