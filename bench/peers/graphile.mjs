// graphile-worker, the peer of Ordinaut's queue benchmark (bench/run queue).
//
//   node graphile.mjs bench --admin-url URL --jobs N --workers W --mode batched|defaults --out FILE
//
// Creates a fresh database, installs graphile-worker's schema, adds N no-op jobs with
// `addJobs` in bulk (not timed), then starts W worker processes (`node graphile.mjs worker`,
// each the library's `run()`), and times from their spawn until the job table is empty.
// `batched` uses the batching the docs recommend for high throughput (localQueue,
// completeJobBatchDelay, failJobBatchDelay); `defaults` leaves those at their defaults.
// Both use the concurrency of graphile-worker's own performance page (its default
// concurrency of 1 would not be a fair comparison with Ordinaut's workers).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { makeWorkerUtils, run } from "graphile-worker";

// The configuration of graphile-worker's published performance figures
// (https://worker.graphile.org/docs/performance): concurrentJobs 24, maxPoolSize 25,
// localQueue { size: 500 }, completeJobBatchDelay 0, failJobBatchDelay 0.
const CONCURRENCY = Number(process.env.GRAPHILE_CONCURRENCY ?? 24);
const LOCAL_QUEUE = Number(process.env.GRAPHILE_LOCAL_QUEUE ?? 500);
const BATCH_DELAY = Number(process.env.GRAPHILE_BATCH_DELAY ?? 0);

function args() {
  const a = { mode: "batched", jobs: 50000, workers: 2 };
  const v = process.argv.slice(3);
  for (let i = 0; i < v.length; i += 2) a[v[i].replace(/^--/, "").replace(/-./g, (m) => m[1].toUpperCase())] = v[i + 1];
  a.jobs = Number(a.jobs);
  a.workers = Number(a.workers);
  return a;
}

function options(mode) {
  const o = { concurrency: CONCURRENCY, maxPoolSize: CONCURRENCY + 1, noHandleSignals: true };
  if (mode === "batched") {
    return {
      ...o,
      preset: {
        worker: {
          localQueue: { size: LOCAL_QUEUE },
          completeJobBatchDelay: BATCH_DELAY,
          failJobBatchDelay: BATCH_DELAY,
        },
      },
    };
  }
  return o;
}

async function worker() {
  const a = args();
  const runner = await run({
    connectionString: a.url,
    ...options(a.mode),
    logger: undefined,
    taskList: { noop: async () => {} },
  });
  const stop = () => runner.stop().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await runner.promise;
}

async function bench() {
  const a = args();
  const admin = new pg.Client({ connectionString: a.adminUrl });
  await admin.connect();
  const name = `graphile_bench_${process.pid}_${Date.now()}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = a.adminUrl.replace(/\/[^/]*$/, `/${name}`);
  try {
    const utils = await makeWorkerUtils({ connectionString: url });
    await utils.migrate();
    for (let i = 0; i < a.jobs; i += 10000) {
      const n = Math.min(10000, a.jobs - i);
      await utils.addJobs(Array.from({ length: n }, (_, k) => ({ identifier: "noop", payload: { n: i + k } })));
    }
    await utils.release();
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    const remaining = async () =>
      Number((await db.query("SELECT count(*) AS n FROM graphile_worker._private_jobs")).rows[0].n);
    if ((await remaining()) !== a.jobs) throw new Error("jobs were not all added");
    process.stderr.write(`graphile-worker (${a.mode}): ${a.jobs} jobs, ${a.workers} workers ...\n`);
    const self = fileURLToPath(import.meta.url);
    const started = process.hrtime.bigint();
    const children = Array.from({ length: a.workers }, () =>
      spawn(process.execPath, [self, "worker", "--url", url, "--mode", a.mode], { stdio: ["ignore", "ignore", "inherit"] }),
    );
    const deadline = Date.now() + 600_000;
    while ((await remaining()) > 0) {
      if (Date.now() > deadline) throw new Error("drain did not finish in 10 minutes");
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await Promise.all(children.map((c) => new Promise((r) => { c.on("exit", r); c.kill("SIGTERM"); })));
    await db.end();
    const version = (await import("graphile-worker/package.json", { with: { type: "json" } })).default.version;
    const result = {
      peer: "graphile-worker",
      version,
      node: process.version,
      mode: a.mode,
      settings: options(a.mode),
      jobs: a.jobs,
      workers: a.workers,
      seconds,
      runs_per_sec: a.jobs / seconds,
    };
    delete result.settings.noHandleSignals;
    console.log(`| graphile-worker ${version} ${a.mode}, drain ${a.jobs}, ${a.workers} processes | ${result.runs_per_sec.toFixed(0)} jobs/s (${seconds.toFixed(1)} s) |`);
    if (a.out) (await import("node:fs")).writeFileSync(a.out, JSON.stringify(result, null, 2));
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

const cmd = process.argv[2];
if (cmd === "worker") await worker();
else if (cmd === "bench") await bench();
else {
  console.error("usage: graphile.mjs bench|worker ...");
  process.exit(2);
}
