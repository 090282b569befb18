/**
 * Tables of a run (plain text per scenario, one Markdown summary) and the targets
 * Sallyport is held to.
 */
import type { Measurement } from './measure.ts';
import type { BenchOptions, ScenarioName, StoreName, TargetName } from './options.ts';

export interface Row {
  scenario: ScenarioName;
  store: StoreName;
  target: TargetName;
  /** null: not applicable (bare provider, federated) or failed. */
  measurement: Measurement | null;
  failure?: string;
}

const SERVER_LABEL: Record<TargetName, string> = { sallyport: 'Sallyport', bare: 'bare' };

const fixed = (n: number | undefined, digits: number) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));
const rate = (n: number, unit: string) => (unit === 'flow' ? n.toFixed(1) : Math.round(n).toLocaleString('en-US'));

function pair(rows: Row[], store: StoreName) {
  return {
    s: rows.find((r) => r.store === store && r.target === 'sallyport')?.measurement ?? undefined,
    b: rows.find((r) => r.store === store && r.target === 'bare')?.measurement ?? undefined,
  };
}

/** Sallyport's rate over the bare provider's. */
function ratio(rows: Row[], store: StoreName): number | undefined {
  const { s, b } = pair(rows, store);
  return s && b && b.rate > 0 ? s.rate / b.rate : undefined;
}

/**
 * The same ratio from CPU time per operation (bare's over Sallyport's): what the ratio
 * of rates would be if each server had its core to itself. Less sensitive to other
 * processes taking turns on the server's core than the rates are.
 */
function cpuRatio(rows: Row[], store: StoreName): number | undefined {
  const { s, b } = pair(rows, store);
  return s && b && s.cpuUs > 0 ? b.cpuUs / s.cpuUs : undefined;
}

function table(header: string[], body: string[][], align: Array<'l' | 'r'>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (align[i] === 'l' ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), ...body.map(line)].join('\n');
}

export const LEGEND = `Columns: ops/s = successful requests or flows per second; p50/p99 = latency of each
request (of each whole flow); errors = non-2xx answers, failed checks, socket errors;
CPU µs = CPU time of the server process per completed operation (/proc/<pid>/stat);
server CPU = its CPU time over wall time; others = time other processes ran on the
server's core over wall time (0% on a quiet machine); redis cmds = commands its
redis-server processed per operation, including those inside scripts; redis µs = CPU
time of that redis-server per operation; Sallyport/bare = ratio of ops/s; by CPU =
ratio of CPU time per operation (bare's over Sallyport's), the ratio the rates would
have if each server had its core to itself.`;

export function formatScenarioTable(scenario: ScenarioName, description: string, unit: 'req' | 'flow', rows: Row[], options: BenchOptions): string {
  const load = unit === 'req' ? `${options.connections} connections` : `${options.flowConcurrency} concurrent browsers`;
  const header = ['store', 'server', `${unit}s/s`, 'p50 ms', 'p99 ms', 'errors', `CPU µs/${unit}`, 'server CPU', 'others', `redis cmds/${unit}`, `redis µs/${unit}`, 'Sallyport/bare', 'by CPU'];
  const body: string[][] = [];
  const notes: string[] = [];
  for (const row of rows) {
    const m = row.measurement;
    const label = SERVER_LABEL[row.target];
    if (!m) {
      body.push([row.store, label, row.failure ? 'failed' : 'n/a', '', '', '', '', '', '', '', '', '', '']);
      if (row.failure) notes.push(`${label} on ${row.store} failed: ${row.failure}`);
      continue;
    }
    const r = row.target === 'sallyport' ? ratio(rows, row.store) : undefined;
    const rc = row.target === 'sallyport' ? cpuRatio(rows, row.store) : undefined;
    body.push([
      row.store,
      label,
      rate(m.rate, unit),
      fixed(m.p50, 1),
      fixed(m.p99, 1),
      String(m.errors),
      Math.round(m.cpuUs).toLocaleString('en-US'),
      `${Math.round(m.cpuBusy * 100)}%`,
      `${Math.round(m.otherLoad * 100)}%`,
      m.redisCommands === undefined ? '-' : m.redisCommands.toFixed(1),
      m.redisCpuUs === undefined ? '-' : Math.round(m.redisCpuUs).toLocaleString('en-US'),
      r === undefined ? '' : `${r.toFixed(2)}x`,
      rc === undefined ? '' : `${rc.toFixed(2)}x`,
    ]);
    if (m.errors > 0) {
      const kinds = Object.entries(m.errorKinds).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${n}× ${k}`);
      notes.push(`${label} on ${row.store}: ${m.errors} errors of ${m.ok + m.errors}: ${kinds.join('; ')}`);
    }
    if (m.redisCommandMix) {
      const mix = Object.entries(m.redisCommandMix).filter(([name, n]) => name !== 'info' && n >= 0.01).slice(0, 10).map(([name, n]) => `${name} ${n}`);
      notes.push(`${label} on ${row.store}, Redis commands per ${unit}: ${mix.join(', ')}`);
    }
    if (m.loaderBusy > 0.9) notes.push(`${label} on ${row.store}: the load generator was ${Math.round(m.loaderBusy * 100)}% busy — the load core may have limited this figure`);
  }
  return `\n${scenario} — ${description}\n(${load}, ${options.duration} s after ${options.warmup} s warm-up)\n\n${table(header, body, ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'])}\n${notes.map((n) => `  · ${n}`).join('\n')}`;
}

export interface TargetResult {
  name: string;
  actual: string;
  met: boolean | null;
}

/** The targets: client_credentials (opaque) on Redis. */
export function evaluateTargets(rows: Row[]): TargetResult[] {
  const cc = rows.filter((r) => r.scenario === 'client_credentials' && r.store === 'redis');
  const s = cc.find((r) => r.target === 'sallyport')?.measurement;
  const b = cc.find((r) => r.target === 'bare')?.measurement;
  const r = s && b && b.rate > 0 ? s.rate / b.rate : undefined;
  const rc = s && b && s.cpuUs > 0 ? b.cpuUs / s.cpuUs : undefined;
  const perCore = (m: Measurement) => Math.round(1e6 / m.cpuUs).toLocaleString('en-US');
  return [
    {
      name: 'client_credentials on Redis: Sallyport ≥ 0.8x the bare provider on Redis',
      actual: r === undefined ? 'not measured' : `${r.toFixed(2)}x (by CPU time per request: ${rc!.toFixed(2)}x)`,
      met: r === undefined ? null : r >= 0.8,
    },
    {
      name: 'client_credentials on Redis: Sallyport ≥ 1,200 requests/s',
      actual: s ? `${Math.round(s.rate).toLocaleString('en-US')}/s with ${Math.round(s.cpuBusy * 100)}% of its core (${perCore(s)}/s per CPU-second)` : 'not measured',
      met: s ? s.rate >= 1200 : null,
    },
    { name: 'client_credentials on Redis: Sallyport p99 < 25 ms at 20 connections', actual: s ? `${s.p99.toFixed(1)} ms` : 'not measured', met: s ? s.p99 < 25 : null },
  ];
}

export function formatTargets(targets: TargetResult[], options: BenchOptions): string {
  const mark = (t: TargetResult) => (t.met === null ? 'n/a ' : t.met ? 'MET ' : 'MISS');
  const offDefaults =
    options.duration < 10 || options.warmup < 2 || options.connections !== 20
      ? '\n  (measured with other settings than the targets assume: 20 connections, ≥ 10 s after ≥ 2 s warm-up)'
      : '';
  return `\nTargets${offDefaults}\n${targets.map((t) => `  [${mark(t)}] ${t.name}: ${t.actual}`).join('\n')}\n`;
}

export function formatSummaryMarkdown(rows: Row[], options: BenchOptions): string {
  const lines = [
    '| scenario | store | Sallyport /s | p50 / p99 ms | errors | CPU µs/op | bare /s | p50 / p99 ms | errors | CPU µs/op | Sallyport/bare | by CPU |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  for (const scenario of scenarios) {
    for (const store of options.stores) {
      const pick = (t: TargetName) => rows.find((r) => r.scenario === scenario && r.store === store && r.target === t);
      const cells = (row: Row | undefined) => {
        const m = row?.measurement;
        if (!m) return [row?.failure ? 'failed' : 'n/a', '', '', ''];
        const unit = scenario === 'signin' || scenario === 'federated' ? 'flow' : 'req';
        return [rate(m.rate, unit), `${fixed(m.p50, 1)} / ${fixed(m.p99, 1)}`, String(m.errors), Math.round(m.cpuUs).toLocaleString('en-US')];
      };
      const same = rows.filter((x) => x.scenario === scenario);
      const r = ratio(same, store);
      const rc = cpuRatio(same, store);
      const x = (v: number | undefined) => (v === undefined ? '' : `${v.toFixed(2)}x`);
      lines.push(`| ${scenario} | ${store} | ${[...cells(pick('sallyport')), ...cells(pick('bare'))].join(' | ')} | ${x(r)} | ${x(rc)} |`);
    }
  }
  return lines.join('\n');
}
