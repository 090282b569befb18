/**
 * A small rule set for the conventions in STYLE.md that the type checker cannot see.
 * Exits non-zero and lists every violation by file:line.
 *
 *  - only src/storage/redis/ imports ioredis in the product (tests and benchmarks, which
 *    measure Redis and drive a bare provider on it, may too)
 *  - only src/main.ts reads process.env (configuration is parsed once and passed in)
 *  - no console.* in src/ (structured logs go through pino)
 *  - no `any` without a comment on the same line saying why
 *  - no focused or skipped tests (.only / .skip)
 *  - no debugger statements
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

interface Rule {
  name: string;
  applies: (file: string) => boolean;
  test: (line: string) => boolean;
}

const isSrc = (f: string) => f.startsWith('src/');
const rules: Rule[] = [
  { name: 'ioredis may only be imported in src/storage/redis/', applies: (f) => !f.startsWith('src/storage/redis/') && !f.startsWith('test/') && !f.startsWith('bench/'), test: (l) => /from ['"]ioredis['"]|import\(['"]ioredis['"]\)/.test(l) },
  { name: 'process.env is read only in src/main.ts', applies: (f) => isSrc(f) && f !== 'src/main.ts', test: (l) => /process\.env\b/.test(l) },
  { name: 'no console.* in src/ (use the logger)', applies: isSrc, test: (l) => /\bconsole\.(log|info|warn|error|debug)\(/.test(l) },
  { name: '`any` needs a comment saying why', applies: () => true, test: (l) => /(:\s*any\b|<any>|as any\b)/.test(l) && !/\/\/|\/\*/.test(l) },
  { name: 'no focused or skipped tests', applies: (f) => f.startsWith('test/'), test: (l) => /\b(describe|it|test)\.(only|skip)\(/.test(l) },
  { name: 'no debugger statements', applies: () => true, test: (l) => /^\s*debugger;?\s*$/.test(l) },
];

async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (/\.(ts|mts)$/.test(entry.name)) yield path;
  }
}

const root = new URL('..', import.meta.url).pathname;
const problems: string[] = [];
for (const top of ['src', 'test', 'scripts', 'bench']) {
  for await (const path of walk(join(root, top))) {
    const file = relative(root, path);
    if (file === 'scripts/lint.ts') continue;
    const lines = (await readFile(path, 'utf8')).split('\n');
    lines.forEach((line, i) => {
      // Comments may talk about what the code must not do.
      if (/^\s*(\*|\/\/|\/\*)/.test(line)) return;
      for (const rule of rules) {
        if (rule.applies(file) && rule.test(line)) problems.push(`${file}:${i + 1}: ${rule.name}`);
      }
    });
  }
}
if (problems.length > 0) {
  process.stderr.write(`${problems.join('\n')}\n${problems.length} problem(s)\n`);
  process.exit(1);
}
process.stdout.write('lint: no problems\n');
