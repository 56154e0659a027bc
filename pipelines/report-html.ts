// The run report as one HTML page: inline CSS and SVG charts drawn on the server by ECharts
// (server-side SVG rendering), no script, font or image: it opens offline, from a file, and
// makes no network request.
//
// Scale (1,000 users × 365 days): a heatmap draws at most HEATMAP_MAX_USERS users — the worst
// covered, fewest days first — under one row for all users; past HEATMAP_MAX_DAY_COLUMNS local
// dates a column is a block of 7 (14, …) days showing its worst day, so a missing day still shows. Every
// user's figures are in summary.json (perUser). Other charts are per date or per run.
import { createRequire } from 'node:module';
import type { EChartsOption } from 'echarts';
import type { Dataset } from '../lib/schema.js';
import {
  COVERAGE_DATASETS,
  HEATMAP_MAX_DAY_COLUMNS,
  HEATMAP_MAX_USERS,
  dateOf,
  windowOf,
  type DatasetCells,
  type DatasetReport,
  type ReportData,
  type RunReport,
} from './report-data.js';

type ECharts = typeof import('echarts');


export function esc(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const fmt = (n: number | null | undefined, digits = 0): string =>
  n === null || n === undefined ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (x: number | undefined): string => (x === undefined ? '—' : `${(x * 100).toFixed(1)} %`);
const duration = (ms: number | null): string => {
  if (ms === null) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
};

function svgChart(echarts: ECharts, width: number, height: number, option: EChartsOption): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  try {
    chart.setOption({ animation: false, textStyle: { fontFamily: 'sans-serif' }, ...option });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

// ------------------------------------------------------------------ heatmaps

const MISSING = -1;

const COVERAGE_PIECES = [
  { value: MISSING, label: 'day missing', color: '#c51b1b' },
  { gte: 0, lt: 0.5, label: '< 50 %', color: '#fb9a4b' },
  { gte: 0.5, lt: 0.9, label: '50–90 %', color: '#fde68a' },
  { gte: 0.9, lt: 0.9995, label: '90–99.9 %', color: '#a3d977' },
  { gte: 0.9995, label: 'complete', color: '#1d8a3f' },
];

const COUNT_PIECES = [
  { value: 0, label: 'no rows', color: '#eceff3' },
  { gte: 0.0001, lt: 10, label: '< 10 rows', color: '#c6dbef' },
  { gte: 10, lt: 100, label: '10–99', color: '#6baed6' },
  { gte: 100, lt: 1000, label: '100–999', color: '#2171b5' },
  { gte: 1000, label: '≥ 1,000', color: '#08306b' },
];

export interface Heatmap {
  /** Column labels (dates, or the first date of each 7-day block). */
  columns: string[];
  /** Row labels: "all users" first, then the users drawn. */
  rows: string[];
  /** [column, row, value] per cell; every row × column has one. */
  data: Array<[number, number, number]>;
  /** Days per column: 1, or a multiple of 7. */
  step: number;
  usersShown: number;
  usersTotal: number;
}

/**
 * The cells of one heatmap. Coverage: a cell is the share of expected points of `type` present
 * (daily_summaries: 1 when the day has a row), MISSING when the user has no partition that day;
 * a column of several days holds its worst day. Counts (activities, readings): rows, summed per column.
 */
export function buildHeatmap(dataset: Dataset, cells: DatasetCells, type: string | null, maxUsers = HEATMAP_MAX_USERS, maxDayColumns = HEATMAP_MAX_DAY_COLUMNS): Heatmap | null {
  const window = windowOf(cells);
  if (window === null) return null;
  const coverage = COVERAGE_DATASETS.has(dataset);
  const span = window.last - window.first + 1;
  // Days, else blocks of whole weeks: 7 days up to ~1.8 years, 14 beyond, … (≤ maxDayColumns columns).
  const step = span > maxDayColumns ? 7 * Math.ceil(span / (7 * maxDayColumns)) : 1;
  const nCols = Math.ceil(span / step);
  const nUsers = cells.users.length;
  const valueOf = (c: number): number => (!coverage ? cells.rows[c]! : type === null ? 1 : cells.shareOf(type, c));

  // Rank users: lowest mean value over the window first (missing days count 0).
  const score = new Float64Array(nUsers);
  const daySum = new Float64Array(span);
  for (let c = 0; c < cells.size; c++) {
    const v = valueOf(c);
    score[cells.user[c]!]! += coverage ? v : 1; // counts: days with data
    daySum[cells.day[c]! - window.first]! += v;
  }
  const order = Array.from({ length: nUsers }, (_, i) => i).sort((a, b) => score[a]! - score[b]! || (cells.users[a]! < cells.users[b]! ? -1 : 1));
  const shown = order.slice(0, maxUsers);
  const rowOf = new Map(shown.map((u, i) => [u, i + 1] as const));

  // Per shown user and column: coverage starts at "missing" per day, counts at 0.
  const perDay = new Float64Array(shown.length * span).fill(coverage ? MISSING : 0);
  for (let c = 0; c < cells.size; c++) {
    const row = rowOf.get(cells.user[c]!);
    if (row === undefined) continue;
    perDay[(row - 1) * span + (cells.day[c]! - window.first)] = valueOf(c);
  }
  const data: Array<[number, number, number]> = [];
  for (let col = 0; col < nCols; col++) {
    const from = col * step;
    const to = Math.min(span, from + step);
    let all = 0;
    for (let d = from; d < to; d++) all += daySum[d]!;
    // The all-users row: coverage is the mean share (missing = 0); counts are rows per user.
    data.push([col, 0, round(coverage ? all / (nUsers * (to - from)) : all / nUsers)]);
    for (let r = 0; r < shown.length; r++) {
      let v = coverage ? Infinity : 0;
      for (let d = from; d < to; d++) {
        const x = perDay[r * span + d]!;
        v = coverage ? Math.min(v, x) : v + x;
      }
      data.push([col, r + 1, round(v)]);
    }
  }
  const columns = Array.from({ length: nCols }, (_, col) => dateOf(window.first + col * step));
  const rows = [`all users (${nUsers})`, ...shown.map((u) => cells.users[u]!)];
  return { columns, rows, data, step, usersShown: shown.length, usersTotal: nUsers };
}

const round = (x: number): number => Math.round(x * 10_000) / 10_000;

function heatmapSvg(echarts: ECharts, map: Heatmap, coverage: boolean): string {
  const cell = Math.max(7, Math.min(28, Math.floor(1000 / map.columns.length)));
  // Wide enough for the legend below it, whatever the number of columns.
  const width = Math.max(640, 170 + map.columns.length * cell + 30);
  const height = 40 + map.rows.length * 15 + 90;
  return svgChart(echarts, width, height, {
    grid: { left: 170, top: 10, bottom: 90, width: map.columns.length * cell },
    xAxis: { type: 'category', data: map.columns, axisLabel: { fontSize: 10, rotate: 60, hideOverlap: true }, splitArea: { show: false } },
    yAxis: { type: 'category', data: map.rows.map((r) => (r.length > 24 ? r.slice(0, 23) + '…' : r)), inverse: true, axisLabel: { fontSize: 10 } },
    visualMap: { type: 'piecewise', pieces: coverage ? COVERAGE_PIECES : COUNT_PIECES, orient: 'horizontal', left: 10, bottom: 0, itemWidth: 14, itemHeight: 10, textStyle: { fontSize: 11 } },
    series: [{ type: 'heatmap', data: map.data, itemStyle: { borderColor: '#ffffff', borderWidth: 1 } }],
  });
}

// ------------------------------------------------------------------ per-date and per-run charts

function rowsPerDate(cells: DatasetCells): { dates: string[]; rows: number[]; users: number[] } | null {
  const window = windowOf(cells);
  if (window === null) return null;
  const span = window.last - window.first + 1;
  const rows = new Array<number>(span).fill(0);
  const users = new Array<number>(span).fill(0);
  for (let c = 0; c < cells.size; c++) {
    rows[cells.day[c]! - window.first]! += cells.rows[c]!;
    users[cells.day[c]! - window.first]! += 1;
  }
  return { dates: Array.from({ length: span }, (_, i) => dateOf(window.first + i)), rows, users };
}

function rowsChart(echarts: ECharts, series: { dates: string[]; rows: number[]; users: number[] }): string {
  return svgChart(echarts, 1000, 260, {
    grid: { left: 70, right: 60, top: 30, bottom: 60 },
    legend: { top: 0, textStyle: { fontSize: 11 } },
    xAxis: { type: 'category', data: series.dates, axisLabel: { fontSize: 10, rotate: 45, hideOverlap: true } },
    yAxis: [
      { type: 'value', name: 'rows', axisLabel: { fontSize: 10 } },
      { type: 'value', name: 'users', axisLabel: { fontSize: 10 }, splitLine: { show: false } },
    ],
    series: [
      { name: 'rows', type: 'bar', data: series.rows, itemStyle: { color: '#4878a8' } },
      { name: 'users with data', type: 'line', yAxisIndex: 1, data: series.users, showSymbol: false, lineStyle: { color: '#d9822b' }, itemStyle: { color: '#d9822b' } },
    ],
  });
}

function reconciliationChart(echarts: ECharts, byDate: ReportData['summary']['reconciliation']['byDate']): string {
  return svgChart(echarts, 1000, 280, {
    grid: { left: 80, right: 70, top: 30, bottom: 60 },
    legend: { top: 0, textStyle: { fontSize: 11 } },
    xAxis: { type: 'category', data: byDate.map((d) => d.date), axisLabel: { fontSize: 10, rotate: 45, hideOverlap: true } },
    yAxis: [
      { type: 'value', name: 'steps', axisLabel: { fontSize: 10 } },
      { type: 'value', name: 'user-days', minInterval: 1, axisLabel: { fontSize: 10 }, splitLine: { show: false } },
    ],
    series: [
      { name: 'sum of minute steps', type: 'line', data: byDate.map((d) => d.intradaySteps), showSymbol: false, lineStyle: { color: '#4878a8', width: 2 }, itemStyle: { color: '#4878a8' } },
      { name: 'day totals', type: 'line', data: byDate.map((d) => d.dayTotal), showSymbol: false, lineStyle: { color: '#d9822b', type: 'dashed', width: 2 }, itemStyle: { color: '#d9822b' } },
      { name: 'user-days that differ', type: 'bar', yAxisIndex: 1, data: byDate.map((d) => d.mismatches), itemStyle: { color: '#c51b1b' } },
    ],
  });
}

function runsChart(echarts: ECharts, runs: RunReport[]): string {
  const label = (r: RunReport): string => (r.startedAt ?? r.runId).replace('T', ' ').slice(0, 16);
  return svgChart(echarts, 1000, 280, {
    grid: { left: 70, right: 70, top: 30, bottom: 70 },
    legend: { top: 0, textStyle: { fontSize: 11 } },
    xAxis: { type: 'category', data: runs.map(label), axisLabel: { fontSize: 10, rotate: 30, hideOverlap: true } },
    yAxis: [
      { type: 'value', name: 'requests', axisLabel: { fontSize: 10 } },
      { type: 'value', name: '429s · retries · wait min', axisLabel: { fontSize: 10 }, splitLine: { show: false } },
    ],
    series: [
      { name: 'requests', type: 'bar', data: runs.map((r) => r.requests ?? 0), itemStyle: { color: '#4878a8' } },
      { name: '429s', type: 'line', yAxisIndex: 1, data: runs.map((r) => r.rateLimited ?? 0), itemStyle: { color: '#c51b1b' }, lineStyle: { color: '#c51b1b' } },
      { name: 'retries', type: 'line', yAxisIndex: 1, data: runs.map((r) => r.retries ?? 0), itemStyle: { color: '#d9822b' }, lineStyle: { color: '#d9822b' } },
      { name: 'rate-limit wait (min)', type: 'line', yAxisIndex: 1, data: runs.map((r) => (r.rateLimitWaitMs === null ? 0 : Math.round(r.rateLimitWaitMs / 600) / 100)), itemStyle: { color: '#7b4fa0' }, lineStyle: { color: '#7b4fa0', type: 'dashed' } },
    ],
  });
}

// ------------------------------------------------------------------ the page

const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; margin: 0; background: #f6f8fa; }
header, main { max-width: 1240px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.muted { color: #57606a; }
nav a { margin-right: 14px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 4px 18px 16px; margin: 16px 0; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e8eb; padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
th { color: #57606a; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; padding-left: 12px; }
.bad { color: #b42318; font-weight: 600; }
.ok { color: #1d7a3a; }
figure { margin: 6px 0 12px; overflow-x: auto; }
figcaption { font-size: 12px; color: #57606a; margin-bottom: 4px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 6px 12px; min-width: 120px; background: #fbfcfd; }
.card b { display: block; font-size: 18px; }
code { font-size: 12px; background: #eff2f5; padding: 1px 4px; border-radius: 4px; }
`;

function table(head: Array<string | [string, 'n']>, rows: string[][]): string {
  const th = head.map((h) => (typeof h === 'string' ? `<th>${esc(h)}</th>` : `<th class="n">${esc(h[0])}</th>`)).join('');
  const numeric = head.map((h) => typeof h !== 'string');
  const body = rows.map((r) => `<tr>${r.map((c, i) => (numeric[i] ? `<td class="n">${c}</td>` : `<td>${c}</td>`)).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

const card = (label: string, value: string, bad = false): string => `<div class="card"><span class="muted">${esc(label)}</span><b${bad ? ' class="bad"' : ''}>${value}</b></div>`;

function datasetSection(echarts: ECharts, dataset: Dataset, report: DatasetReport, cells: DatasetCells, runs: RunReport[]): string {
  const coverage = COVERAGE_DATASETS.has(dataset);
  const parts: string[] = [`<section id="ds-${esc(dataset)}"><h2>${esc(dataset)}</h2>`];
  const m = report.manifest;
  const manifestIssues = m.missingFileCount + m.unlistedCount + m.rowMismatchCount;
  parts.push(
    '<div class="cards">',
    card('rows', fmt(report.rows)),
    card('partitions', fmt(report.partitions)),
    card('users', fmt(report.users)),
    card('local dates', report.firstDate ? `${esc(report.firstDate)} … ${esc(report.lastDate)}` : '—'),
    card('size', `${fmt(report.bytes / 1e6, 1)} MB`),
    coverage ? card('user-days missing', fmt(report.missingUserDays), report.missingUserDays > 0) : '',
    card('manifest issues', fmt(manifestIssues), manifestIssues > 0),
    card('dead letters (recent runs)', fmt(report.deadLetters.count), report.deadLetters.count > 0),
    '</div>',
  );
  if (report.coverage) {
    parts.push(
      '<h3>Coverage per type</h3><p class="muted">Share of the expected points present over every user × local date of the window ' +
        '(86,400 s ÷ the <code>interval</code> column: 1,440 a day at 1min); a missing day counts 0.</p>',
      table(['type', ['coverage', 'n']], Object.entries(report.coverage).map(([t, v]) => [esc(t), pct(v)])),
    );
  }
  const types = dataset === 'intraday' ? [...cells.share.keys()].sort((a, b) => (a === 'steps' ? -1 : b === 'steps' ? 1 : a < b ? -1 : 1)) : [null];
  for (const type of types) {
    const map = buildHeatmap(dataset, cells, type);
    if (map === null) continue;
    const what = coverage ? (type === null ? 'a row for the day' : `share of expected ${type} points present`) : 'rows';
    const caption =
      `${type === null ? '' : `<b>${esc(type)}</b> — `}${esc(what)} per user × local ${map.step === 1 ? 'date' : `${map.step}-day block (${coverage ? 'its worst day' : 'summed'}; labelled by its first date)`}; ` +
      `${map.usersShown} of ${map.usersTotal} users drawn (${coverage ? 'the worst covered' : 'fewest days with data'} first), under a row for all users ` +
      `(${coverage ? 'mean share' : 'rows per user'}); every user is in summary.json.`;
    parts.push(
      `<figure class="heatmap" data-dataset="${esc(dataset)}" data-type="${esc(type ?? '')}" data-cells="${map.data.length}" data-rows="${map.rows.length}" data-columns="${map.columns.length}">`,
      `<figcaption>${caption}</figcaption>`,
      heatmapSvg(echarts, map, coverage),
      '</figure>',
    );
  }
  const series = rowsPerDate(cells);
  if (series) parts.push('<h3>Rows per local date</h3><figure>', rowsChart(echarts, series), '</figure>');

  const worst = [...report.perUser].sort((a, b) => b.missingDayCount - a.missingDayCount || a.days - b.days || (a.user < b.user ? -1 : 1)).slice(0, HEATMAP_MAX_USERS);
  const typeNames = report.coverage ? Object.keys(report.coverage) : [];
  parts.push(
    `<h3>Users${report.perUser.length > worst.length ? ` (the ${worst.length} with the most missing days of ${report.perUser.length})` : ''}</h3>`,
    table(
      ['user', ['rows', 'n'], ['days', 'n'], 'first', 'last', ...(coverage ? [['missing days', 'n'] as [string, 'n'], 'missing'] : []), ...typeNames.map((t) => [t, 'n'] as [string, 'n'])],
      worst.map((u) => [
        esc(u.user),
        fmt(u.rows),
        fmt(u.days),
        esc(u.firstDate),
        esc(u.lastDate),
        ...(coverage
          ? [u.missingDayCount > 0 ? `<span class="bad">${fmt(u.missingDayCount)}</span>` : '0', esc(u.missingDays.slice(0, 6).join(', ') + (u.missingDays.length > 6 ? ', …' : ''))]
          : []),
        ...typeNames.map((t) => pct(u.coverage?.[t])),
      ]),
    ),
  );
  if (manifestIssues > 0) {
    const list = (title: string, count: number, items: string[]): string =>
      count === 0 ? '' : `<p><b>${esc(title)}</b> (${fmt(count)}): ${items.slice(0, 20).map((p) => `<code>${esc(p)}</code>`).join(' ')}${count > 20 ? ' …' : ''}</p>`;
    parts.push(
      '<h3 class="bad">Manifest and files disagree</h3>',
      list('in _manifest.json but not on disk', m.missingFileCount, m.missingFiles),
      list('on disk but not in _manifest.json', m.unlistedCount, m.unlisted),
      list('row count differs', m.rowMismatchCount, m.rowMismatches.map((r) => `${r.path}: manifest ${r.manifest}, file ${r.file}`)),
    );
  } else if (!m.present) parts.push('<p class="muted">No _manifest.json for this dataset.</p>');

  const wrote = runs.filter((r) => r.datasets.some((d) => d.dataset === dataset)).slice(-10).reverse();
  if (wrote.length > 0) {
    parts.push(
      '<h3>Recent runs that wrote it</h3>',
      table(
        ['run', 'started', ['rows in', 'n'], ['rows', 'n'], ['files', 'n'], ['dead letters', 'n'], ['requests', 'n'], ['429s', 'n'], ['retries', 'n'], ['rate-limit wait', 'n'], 'exit'],
        wrote.map((r) => {
          const d = r.datasets.filter((x) => x.dataset === dataset);
          const sum = (k: 'rowsIn' | 'rows' | 'files' | 'deadLetters'): number => d.reduce((n, x) => n + x[k], 0);
          return [esc(r.runId), esc(r.startedAt ?? '—'), fmt(sum('rowsIn')), fmt(sum('rows')), fmt(sum('files')), fmt(sum('deadLetters')), fmt(r.requests), fmt(r.rateLimited), fmt(r.retries), duration(r.rateLimitWaitMs), exitCell(r)];
        }),
      ),
    );
  }
  if (report.deadLetters.reasons.length > 0) {
    parts.push(
      `<h3>Dead letters of the recent runs (${fmt(report.deadLetters.count)})</h3>`,
      table(['reason', ['count', 'n'], 'example'], report.deadLetters.reasons.map((r) => [esc(r.reason), fmt(r.count), `<span class="muted">${esc(r.example)}</span>`])),
    );
  }
  parts.push('</section>');
  return parts.join('\n');
}

function exitCell(r: RunReport): string {
  if (r.exitCode === null) return '—';
  const text = r.exitCode === 0 ? '0 ok' : r.exitCode === 3 ? '3 partial' : r.exitCode === 1 ? '1 failed' : String(r.exitCode);
  return r.exitCode === 0 ? `<span class="ok">${text}</span>` : `<span class="bad">${text}</span>`;
}

function reconciliationSection(echarts: ECharts, data: ReportData): string {
  const rec = data.summary.reconciliation;
  const parts = [
    '<section id="reconciliation"><h2>Reconciliation: minute steps against the day totals</h2>',
    '<p class="muted">For every user and local date with both, the sum of the <code>intraday</code> steps points is compared with the ' +
      '<code>steps</code> of each <code>daily_summaries</code> row of that day, whatever its source (Fitbit keeps the day total its intraday answer ' +
      'carries; Google Health its <code>dailyRollUp</code>). A difference of one step or more is listed.</p>',
    '<div class="cards">',
    card('user-days compared', fmt(rec.compared)),
    card('differ', fmt(rec.mismatches), rec.mismatches > 0),
    card('minute steps, no day total', fmt(rec.intradayOnly)),
    card('day total, no minute steps', fmt(rec.summaryOnly)),
    '</div>',
  ];
  if (rec.byDate.length > 0) parts.push('<figure>', reconciliationChart(echarts, rec.byDate), '</figure>');
  if (rec.rows.length > 0) {
    parts.push(
      `<h3 class="bad">User-days that differ${rec.mismatches > 100 ? ` (the 100 largest of ${fmt(rec.mismatches)}; up to 1,000 in summary.json)` : ''}</h3>`,
      table(
        ['user', 'date', 'day total from', ['sum of minutes', 'n'], ['day total', 'n'], ['difference', 'n'], ['minute coverage', 'n']],
        rec.rows.slice(0, 100).map((r) => [esc(r.user), esc(r.date), esc(r.source), fmt(r.intradaySteps), fmt(r.dayTotal), `<span class="bad">${r.difference > 0 ? '+' : ''}${fmt(r.difference)}</span>`, pct(r.stepsCoverage)]),
      ),
    );
  } else if (rec.compared > 0) parts.push('<p class="ok">Every user-day compared adds up.</p>');
  parts.push('</section>');
  return parts.join('\n');
}

function runsSection(echarts: ECharts, runs: RunReport[]): string {
  const parts = ['<section id="runs"><h2>Run health</h2>'];
  if (runs.length === 0) {
    parts.push('<p class="muted">No run summaries in _runs/.</p></section>');
    return parts.join('\n');
  }
  const t = runs.reduce(
    (a, r) => ({ requests: a.requests + (r.requests ?? 0), limited: a.limited + (r.rateLimited ?? 0), retries: a.retries + (r.retries ?? 0), wait: a.wait + (r.rateLimitWaitMs ?? 0) }),
    { requests: 0, limited: 0, retries: 0, wait: 0 },
  );
  parts.push(
    `<p class="muted">The ${runs.length} most recent run summaries (<code>_runs/*.json</code>). Rate-limit wait is the time requests spent waiting for a rate budget or after a 429, summed over users (they wait side by side).</p>`,
    '<div class="cards">',
    card('requests', fmt(t.requests)),
    card('429 answers', fmt(t.limited), t.limited > 0),
    card('retries', fmt(t.retries), t.retries > 0),
    card('rate-limit wait', duration(t.wait)),
    card('runs not ok', fmt(runs.filter((r) => r.exitCode !== 0).length), runs.some((r) => r.exitCode !== 0)),
    '</div>',
    '<figure>',
    runsChart(echarts, runs),
    '</figure>',
    table(
      ['run', 'started', 'took', 'pipelines', ['requests', 'n'], ['429s', 'n'], ['retries', 'n'], ['rate-limit wait', 'n'], ['token refreshes', 'n'], ['failed users', 'n'], 'exit', 'error'],
      [...runs].reverse().map((r) => [
        esc(r.runId),
        esc(r.startedAt ?? '—'),
        duration(r.durationMs),
        esc(r.pipelines.join(', ')),
        fmt(r.requests),
        fmt(r.rateLimited),
        fmt(r.retries),
        duration(r.rateLimitWaitMs),
        fmt(r.tokenRefreshes),
        r.failedUsers > 0 ? `<span class="bad">${r.failedUsers}</span>` : '0',
        exitCell(r),
        r.errors.length > 0 ? `<span class="bad">${esc(r.errors.join('; ').slice(0, 300))}</span>` : '',
      ]),
    ),
    '</section>',
  );
  return parts.join('\n');
}

export async function renderReportHtml(data: ReportData): Promise<string> {
  // Loaded only here, as its one-file bundle (the `require` entry): the ES modules are hundreds
  // of files, which took seconds to load. No other command needs it.
  const echarts = createRequire(import.meta.url)('echarts') as ECharts;
  const { summary } = data;
  const names = Object.keys(summary.datasets) as Dataset[];
  const overview = table(
    ['dataset', ['rows', 'n'], ['partitions', 'n'], ['files', 'n'], ['users', 'n'], 'first date', 'last date', ['user-days missing', 'n'], ['dead letters', 'n'], ['manifest issues', 'n']],
    names.map((n) => {
      const d = summary.datasets[n]!;
      const issues = d.manifest.missingFileCount + d.manifest.unlistedCount + d.manifest.rowMismatchCount;
      const missing = COVERAGE_DATASETS.has(n) ? fmt(d.missingUserDays) : '—';
      return [
        `<a href="#ds-${esc(n)}">${esc(n)}</a>`,
        fmt(d.rows),
        fmt(d.partitions),
        fmt(d.files),
        fmt(d.users),
        esc(d.firstDate ?? '—'),
        esc(d.lastDate ?? '—'),
        d.missingUserDays > 0 && COVERAGE_DATASETS.has(n) ? `<span class="bad">${missing}</span>` : missing,
        fmt(d.deadLetters.count),
        issues > 0 ? `<span class="bad">${issues}</span>` : '0',
      ];
    }),
  );
  const sections = names.map((n) => datasetSection(echarts, n, summary.datasets[n]!, data.cells[n]!, summary.runs));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>wearable-etl report — ${esc(summary.generatedAt.slice(0, 16).replace('T', ' '))} UTC</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>wearable-etl run report</h1>
<p class="muted">Output root <code>${esc(summary.outDir)}</code> · generated ${esc(summary.generatedAt)} · counted from the files themselves; the figures are in <code>_report/summary.json</code>.</p>
<nav>${names.map((n) => `<a href="#ds-${esc(n)}">${esc(n)}</a>`).join('')}<a href="#reconciliation">reconciliation</a><a href="#runs">run health</a></nav>
</header>
<main>
<section id="overview"><h2>Datasets</h2>
${names.length === 0 ? '<p class="muted">No dataset in this output root.</p>' : overview}
</section>
${sections.join('\n')}
${reconciliationSection(echarts, data)}
${runsSection(echarts, summary.runs)}
<p class="muted">Heatmaps draw at most ${HEATMAP_MAX_USERS} users (the worst covered) under a row for all users; past ${HEATMAP_MAX_DAY_COLUMNS} local dates a column is a block of 7 (or 14, 21, …) days that shows its worst day. Every user's figures are in summary.json.</p>
</main>
</body>
</html>
`;
}
