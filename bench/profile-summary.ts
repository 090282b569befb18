/**
 * Where the time goes in a V8 CPU profile (node --cpu-prof, e.g. from BENCH_CPU_PROF):
 * self time by module (package or source folder) and by function, and inclusive time by
 * function (time with the function anywhere on the stack).
 *
 * Usage: node bench/profile-summary.ts <file.cpuprofile> [--top=25] [--ops=N] [--filter=text]
 * --ops: operations (requests, flows) during the profile, to show µs per operation.
 * --filter: only functions whose name or file contains the text, followed by the call
 * paths (callers, up to 6 frames) that spend time in them.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const args = process.argv.slice(2);
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const file = args.find((a) => !a.startsWith('--'));
if (!file) throw new Error('usage: profile-summary.ts <file.cpuprofile> [--top=25] [--ops=N] [--filter=text]');
const top = Number(flag('top') ?? 25);
const ops = flag('ops') ? Number(flag('ops')) : undefined;
const filter = flag('filter');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

// Deltas are wall-clock time: a process descheduled by the OS (other processes on its
// core) shows up as one huge delta on whatever frame was sampled next. Deltas beyond
// 10x the usual sampling interval are counted as one usual interval instead, except on
// the garbage collector, whose pauses really can be that long.
const sortedDeltas = [...profile.timeDeltas].sort((a, b) => a - b);
const usual = sortedDeltas[Math.floor(sortedDeltas.length / 2)] ?? 0;
const gcNodes = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(garbage collector)').map((n) => n.id));
let clamped = 0;
profile.timeDeltas = profile.timeDeltas.map((d, i) => {
  if (d <= 10 * usual || gcNodes.has(profile.samples[i]!)) return d;
  clamped += d - usual;
  return usual;
});

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

function moduleOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return url;
  const src = /\/(src|bench|test)\/(.*)$/.exec(url);
  if (src) return `${src[1]}/${src[2]!.includes('/') ? src[2]!.slice(0, src[2]!.lastIndexOf('/')) : src[2]}`;
  return url;
}
const short = (url: string) => url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench|test)\//, '$1/');
const key = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

const selfByFn = new Map<string, number>();
const selfByModule = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  total += dt;
  const node = byId.get(id)!;
  selfByFn.set(key(node), (selfByFn.get(key(node)) ?? 0) + dt);
  const mod = moduleOf(node.callFrame.url, node.callFrame.functionName);
  selfByModule.set(mod, (selfByModule.get(mod) ?? 0) + dt);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur)!);
    if (!seen.has(k)) {
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  }
});

const idle = selfByFn.get('(idle) :0') ?? 0;
const busy = total - idle;
const pct = (us: number) => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms${ops ? `${(us / ops).toFixed(1).padStart(8)} µs/op` : ''}`;
const list = (title: string, m: Map<string, number>, n: number) => {
  process.stdout.write(`\n${title}\n`);
  [...m.entries()]
    .filter(([k]) => !['(idle) :0', '(idle)', '(root) :0', '(program) :0'].includes(k) && (!filter || k.includes(filter)))
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .forEach(([k, v]) => process.stdout.write(`${ms(v)} ${pct(v)}  ${k}\n`));
};

process.stdout.write(`profile: ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s${ops ? ` = ${(busy / ops).toFixed(0)} µs/op` : ''} (percentages are of busy time); ${(clamped / 1e6).toFixed(1)} s of gaps between samples not counted\n`);
list('self time by module', selfByModule, top);
list('self time by function', selfByFn, top);
list('inclusive time by function', inclusive, top);

if (filter) {
  // Time in frames matching the filter, by the path of callers leading to them.
  const paths = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur)!;
      if (!key(node).includes(filter)) continue;
      const chain: string[] = [];
      for (let up: number | undefined = cur; up !== undefined && chain.length < 7; up = parent.get(up)) chain.push(key(byId.get(up)!));
      paths.set(chain.join('\n      <- '), (paths.get(chain.join('\n      <- ')) ?? 0) + dt);
      break;
    }
  });
  list(`call paths into "${filter}"`, paths, Math.min(top, 10));
}
