// Turns the JSON lines of one tools/bench.sh run into summary.md (the tables
// docs/PERFORMANCE.md quotes, with each target and whether it was met) and
// fanout.dat (the data gnuplot draws). Usage: node summarize.mjs RESULTS_DIR
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node summarize.mjs RESULTS_DIR');
  process.exit(2);
}

function load(name) {
  try {
    const text = fs.readFileSync(path.join(dir, `${name}.json`), 'utf8').trim();
    return JSON.parse(text);
  } catch {
    return null; // the run did not happen or did not end with its JSON line
  }
}

const fmt = (n, digits = 0) =>
  n === undefined || n === null ? '-' : Number(n).toLocaleString('en-US', {
    maximumFractionDigits: digits, minimumFractionDigits: digits,
  });
const ms = (us) => (us === undefined || us === null ? '-' : (us / 1000).toFixed(us < 10000 ? 2 : 1));
const yes = (ok) => (ok ? 'met' : '**not met**');

const lines = [];
const out = (s = '') => lines.push(s);
const machine = fs.existsSync(path.join(dir, 'machine.txt'))
  ? fs.readFileSync(path.join(dir, 'machine.txt'), 'utf8').trim() : '';

out(`# Benchmark results: ${path.basename(dir)}`);
out();
out('```');
out(machine);
out('```');
out();

// ---- fan-out ----
const fanouts = fs.readdirSync(dir)
  .filter((f) => /^fanout-\d+\.json$/.test(f))
  .map((f) => load(f.replace(/\.json$/, '')))
  .filter(Boolean)
  .sort((a, b) => a.offered_deliveries_per_s - b.offered_deliveries_per_s);

out('## Fan-out: 1,000 clients, 10 rooms, two gateways, 100-byte messages');
out();
out('| offered deliveries/s | achieved | loss | dup | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms ' +
    '| server CPU s | deliveries per server CPU-s | bench µs/delivery | other procs CPU s (rough) | evalsha/msg | checks |');
out('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
const dat = ['# offered achieved p50_ms p90_ms p99_ms p999_ms deliveries_per_server_cpu_s'];
for (const r of fanouts) {
  const l = r.latency_us;
  out(`| ${fmt(r.offered_deliveries_per_s)} | ${fmt(r.deliveries_per_s)} | ${fmt(r.loss)} | ` +
      `${fmt(r.duplicates)} | ${ms(l.p50)} | ${ms(l.p90)} | ${ms(l.p99)} | ${ms(l.p999)} | ${ms(l.max)} | ` +
      `${fmt(r.server_cpu_s, 2)} | ${fmt(r.deliveries_per_server_cpu_s)} | ` +
      `${fmt(r.bench_us_per_delivery, 2)} | ${fmt(r.other_processes_cpu_s, 2)} | ` +
      `${r.redis ? fmt(r.redis.evalsha_per_message, 3) : '-'} | ${r.ok ? 'ok' : `FAILED: ${r.problem}`} |`);
  dat.push([r.offered_deliveries_per_s, r.deliveries_per_s, l.p50 / 1000, l.p90 / 1000,
    l.p99 / 1000, l.p999 / 1000, r.deliveries_per_server_cpu_s].join(' '));
}
fs.writeFileSync(path.join(dir, 'fanout.dat'), dat.join('\n') + '\n');
out();
if (fanouts.length) {
  const per = fanouts[0].servers.map((s) => s.name);
  out('Server CPU seconds per run, by process: ' + fanouts.map((r) =>
    `${fmt(r.offered_deliveries_per_s)}: ` + r.servers.map((s) => `${s.name} ${s.cpu_s}`).join(', '))
    .join('; ') + ` (${per.join(', ')}).`);
  out();
}

// ---- the rest ----
const connect = load('connect');
const storm = load('storm');
const idle20 = load('idle-20k');
const idle20j = load('idle-20k-joined');
const idle50 = load('idle-50k');
const keepalive = load('keepalive-20k');

if (connect) {
  out('## Connections per second');
  out();
  out(`${fmt(connect.completed)} connections (connect, upgrade, welcome, close 1000) in ` +
      `${connect.elapsed_run_s} s with ${connect.slots} slots: **${fmt(connect.connections_per_s)}/s**; ` +
      `latency to welcome p50 ${ms(connect.latency_us.p50)} ms, p99 ${ms(connect.latency_us.p99)} ms; ` +
      `server CPU ${fmt(connect.server_us_per_connection, 1)} µs per connection; ` +
      `failures ${connect.connect_failures}.`);
  out();
}

const idleRow = (r) => {
  if (!r || r.skipped) return null;
  const m = r.memory[0] || {};
  return `| ${fmt(r.connections)} | ${r.rooms ? `yes (${fmt(r.rooms)} rooms)` : 'no'} | ` +
    `${fmt(r.established)} | ${fmt(r.held)} | ${fmt(r.setup_s, 2)} | ${fmt(m.rss_before_kib)} | ` +
    `${fmt(m.rss_after_kib)} | ${fmt(m.bytes_per_conn)} | ${fmt(m.hwm_kib)} |`;
};
const idleRows = [idleRow(idle20), idleRow(idle20j), idle50?.skipped ? null : idleRow(idle50)]
  .filter(Boolean);
if (idleRows.length) {
  out('## Idle connections on one fresh gateway');
  out();
  out('| connections | joined a room | established | still open after hold | setup s | RSS before KiB | ' +
      'RSS after KiB | bytes per connection | peak RSS KiB |');
  out('|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  idleRows.forEach((r) => out(r));
  out();
}

if (keepalive) {
  const m = keepalive.memory[0] || {};
  out('## Keepalive');
  out();
  out(`${fmt(keepalive.held)} of ${fmt(keepalive.connections)} idle connections on one gateway with ` +
      `--ping-interval-s 5, held ${keepalive.hold_s} s (a ping and a pong per connection every 5 s): ` +
      `gateway CPU while holding ${fmt(m.hold_cpu_s, 2)} s, ` +
      `${fmt((m.hold_cpu_s / keepalive.hold_s) * 100, 1)}% of a core; setup ${fmt(keepalive.setup_per_s)} connections/s.`);
  out();
}

const bigrooms = fs.readdirSync(dir)
  .filter((f) => /^bigroom-(diff-|page[0-9]+-)?[0-9]+\.json$/.test(f))
  .map((f) => ({ name: f.replace(/\.json$/, ''), r: load(f.replace(/\.json$/, '')) }))
  .filter((x) => x.r && x.r.connections)
  .sort((a, b) => a.r.connections / a.r.rooms - b.r.connections / b.r.rooms);
if (bigrooms.length) {
  out('## Big rooms: the same joins into rooms of growing size');
  out('');
  out('| run | clients | rooms | joined in (s) | joins/s | connect→joined p50 / p99 (ms) | Redis CPU (s) | Redis CPU per join (µs) | gateway CPU per join (µs) |');
  out('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const { name, r } of bigrooms) {
    const cpu = (n) => r.memory.find((m) => m.name === n)?.cpu_s;
    const per = (n) => (cpu(n) !== undefined ? fmt(Math.round((cpu(n) * 1e6) / r.established)) : '?');
    out(`| ${name} | ${fmt(r.connections)} | ${fmt(r.rooms)} | ${r.setup_s} | ${fmt(r.setup_per_s)} | ` +
        `${ms(r.setup_latency_us.p50)} / ${ms(r.setup_latency_us.p99)} | ${cpu('redis')} | ${per('redis')} | ${per(name)} |`);
  }
  out('');
}

function stormSummary(title, st) {
  out(`## ${title}`);
  out();
  const s0 = st.storms[0] || {};
  const presence = s0.presence_right_s === undefined ? ''
    : s0.presence_right_s >= 0
      ? ` The member lists (HTTP, every page) were right ${s0.presence_right_s} s after the drop ` +
        `(${s0.presence_looks} looks, the longest ${s0.presence_check_ms} ms) and ` +
        `${s0.presence_still_right ? 'still right' : '**wrong again**'} at the end.`
      : ' The member lists were **not right** within --presence-within.';
  out(`${fmt(st.clients)} clients in ${st.rooms} rooms over ${st.gateways} gateways ` +
      `(${st.senders} more connections sending ${st.rate} msg/s throughout) dropped by ${st.drop} ` +
      `and rejoined with since: ${fmt(s0.rejoined)} back in ${s0.seconds} s ` +
      `(${s0.failed_attempts} connect attempts retried); recovered ${fmt(st.recovered)}, ` +
      `not recovered ${st.not_recovered}, recovered with a gap ${st.recovery_gaps}; ` +
      `loss ${st.loss}, duplicates ${st.duplicates}, seq gaps ${st.seq_gaps}; ` +
      `drop-to-joined p50 ${ms(st.rejoin_latency_us.p50)} ms, p99 ${ms(st.rejoin_latency_us.p99)} ms.` +
      presence + ' Peak RSS seen (KiB): ' +
      Object.entries(st.rss_peak_kib).map(([k, v]) => `${k} ${fmt(v)}`).join(', ') + '.');
  out();
}
if (storm) stormSummary('Reconnect storm', storm);
const bigStorm = load('bigroom-storm');
if (bigStorm) stormSummary('Big room: a storm of half its members', bigStorm);

const bigChat = load('bigroom-chat');
const churn = bigChat?.churn;
if (bigChat && churn) {
  out('## Big room: chat while members join and leave');
  out();
  out(`${fmt(bigChat.clients)} members in ${bigChat.rooms} room over ${bigChat.gateways} gateways, ` +
      `${bigChat.senders} of them sending ${bigChat.rate} msg/s for ${bigChat.duration_s} s, while ` +
      `${fmt(churn.joined)} more joined and ${fmt(churn.left)} left (${churn.joins_per_s}/s and ` +
      `${churn.leaves_per_s}/s; ${churn.per_s_asked}/s asked, each staying ${churn.hold_s} s, ` +
      `${churn.skipped} starts skipped): deliveries ${fmt(bigChat.received)} of ${fmt(bigChat.expected)}, ` +
      `loss ${bigChat.loss}, duplicates ${bigChat.duplicates}, seq gaps ${bigChat.seq_gaps}; ` +
      `latency p50 ${ms(bigChat.latency_us.p50)} ms, p99 ${ms(bigChat.latency_us.p99)} ms, ` +
      `max ${ms(bigChat.latency_us.max)} ms; churn connect→joined p50 ${ms(churn.join_latency_us.p50)} ms, ` +
      `p99 ${ms(churn.join_latency_us.p99)} ms; the churn members' own deliveries in order ` +
      `(duplicates ${churn.duplicates}, gaps ${churn.seq_gaps}).`);
  out();
}

// ---- targets ----
const byOffered = (n) => fanouts.find((r) => r.offered_deliveries_per_s === n);
const f25 = byOffered(25000);
const f100 = byOffered(100000);
const bestEff = fanouts.reduce((m, r) => Math.max(m, r.deliveries_per_server_cpu_s || 0), 0);
const firstEff = fanouts.find((r) => r.ok && r.deliveries_per_server_cpu_s >= 500000);
out('## Targets');
out();
out('| target | measured | |');
out('|---|---|---|');
if (fanouts.length) {
  out(`| ≥ 500,000 deliveries per server CPU-second | ${firstEff ? `from ${fmt(firstEff.offered_deliveries_per_s)} ` +
      `deliveries/s offered (p99 ${ms(firstEff.latency_us.p99)} ms there); ` : ''}best ${fmt(bestEff)} ` +
      `(${fanouts.map((r) => `${fmt(r.offered_deliveries_per_s / 1000)}k: ${fmt(r.deliveries_per_server_cpu_s)}`).join(', ')}) ` +
      `| ${yes(bestEff >= 500000)} |`);
}
if (f25) out(`| p99 < 2 ms at 25,000 deliveries/s | p99 ${ms(f25.latency_us.p99)} ms | ${yes(f25.latency_us.p99 < 2000)} |`);
if (f100) out(`| p99 at 100,000 deliveries/s (stated) | p99 ${ms(f100.latency_us.p99)} ms, achieved ${fmt(f100.deliveries_per_s)}/s | stated |`);
if (idle20) {
  const b = idle20.memory[0]?.bytes_per_conn;
  out(`| ≤ 4 KiB gateway RSS per idle connection at 20,000 | ${fmt(b)} bytes with ${fmt(idle20.connections)}` +
      `${idle20j ? `; ${fmt(idle20j.memory[0]?.bytes_per_conn)} bytes when each joined a room` : ''} ` +
      `| ${yes(b <= 4096)} |`);
}
if (idle50?.skipped) out(`| 50,000 idle connections on one gateway | not run: ${idle50.skipped} | not measurable here |`);
else if (idle50) out(`| 50,000 idle connections on one gateway | ${fmt(idle50.held)} of ${fmt(idle50.connections)} held | ${yes(idle50.held >= 50000)} |`);
if (f100 && f100.redis) out(`| 1 Redis command per chat message | ${f100.redis.evalsha_per_message} EVALSHA per message at 100k/s (commandstats also counts the commands a script runs: ${f100.redis.commands_per_message} in all) | ${yes(f100.redis.evalsha_per_message <= 1.05)} |`);
// Redis CPU per join at 10, 1,000 and the largest room, per kind of join.
for (const [kind, re] of [['count-only joins', /^bigroom-[0-9]+$/], ['joins with a page of 100', /^bigroom-page100-[0-9]+$/],
  ['joins with a page of 25', /^bigroom-page25-[0-9]+$/]]) {
  const runs = bigrooms.filter((x) => re.test(x.name));
  if (runs.length < 3) continue;
  const per = runs.map(({ r }) => (r.memory.find((m) => m.name === 'redis')?.cpu_s * 1e6) / r.established);
  const ratio = Math.max(...per) / Math.min(...per);
  out(`| Redis CPU per join flat within 2× (rooms of ${runs.map(({ r }) => fmt(r.connections / r.rooms)).join(' / ')}), ` +
      `${kind} | ${per.map((v) => fmt(v)).join(' / ')} µs (${ratio.toFixed(1)}×) | ${yes(ratio <= 2)} |`);
}
if (bigChat && churn) {
  const inOrder = bigChat.loss === 0 && bigChat.duplicates === 0 && bigChat.seq_gaps === 0;
  const met = bigChat.ok && inOrder && bigChat.latency_us.p99 < 100000 && bigChat.clients >= 10000 &&
    churn.joins_per_s >= 190 && churn.leaves_per_s >= 190;
  out(`| chat in a room of ${fmt(bigChat.clients)} at ${bigChat.rate} msg/s, all in order, p99 < 100 ms, ` +
      `with joins and leaves at 200/s | p99 ${ms(bigChat.latency_us.p99)} ms, loss ${bigChat.loss}, ` +
      `duplicates ${bigChat.duplicates}, gaps ${bigChat.seq_gaps}; churn ${churn.joins_per_s}/s joins, ` +
      `${churn.leaves_per_s}/s leaves | ${yes(met)} |`);
}
if (bigStorm) {
  const s0 = bigStorm.storms[0] || {};
  out(`| a drop of ${fmt(bigStorm.clients)} of a room recovers, no gap or duplicate, presence right within 10 s | ` +
      `back in ${s0.seconds} s, recovered ${fmt(bigStorm.recovered)}, gaps ${bigStorm.seq_gaps}, ` +
      `duplicates ${bigStorm.duplicates}; member lists right after ${s0.presence_right_s} s | ` +
      `${yes(bigStorm.ok && s0.presence_right_s >= 0 && s0.presence_right_s <= 10 && bigStorm.clients >= 5000)} |`);
}
if (storm) out(`| storm of 10,000 clients, all recovered | ${fmt(storm.recovered)} of ${fmt(storm.clients)} recovered, loss ${storm.loss} | ${yes(storm.ok && storm.clients >= 10000)} |`);
out();

for (const f of ['profile-by-process.txt', 'profile-gw1-by-library.txt', 'profile-gw1-syscalls.txt',
  'profile-gw1-self.txt']) {
  const p = path.join(dir, f);
  if (!fs.existsSync(p)) continue;
  out(`## ${f.replace(/\.txt$/, '')} (perf, cpu-clock, 100,000 deliveries/s)`);
  out();
  out('```');
  out(fs.readFileSync(p, 'utf8').split('\n').slice(0, 30).join('\n').trimEnd());
  out('```');
  out();
}

fs.writeFileSync(path.join(dir, 'summary.md'), lines.join('\n'));
console.log(lines.filter((l) => l.startsWith('|') || l.startsWith('#')).join('\n'));
