// The MCP gateway's benchmark (docs/BENCHMARKS.md): the same trivial tool (`echo` of the
// reference "everything" server) called directly and through `mandate mcp run`, in the same
// run, with the TypeScript SDK's client over stdio.
//
// Usage: node bench.mjs SEQ_CALLS CLIENTS SECONDS -- DIRECT_CMD... -- GATEWAY_CMD... [-- URL]
// (URL: the endpoint's /mcp/{server}, measured too, with the token in MANDATE_MCP_TOKEN).
// Prints one JSON object: per-call latency (sequential, one client) for both, the added
// latency at p50/p90/p99, and calls per second with CLIENTS concurrent clients for both.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const argv = process.argv.slice(2);
const [seq, clients, seconds] = argv.slice(0, 3).map(Number);
const rest = argv.slice(4);
const cut = rest.indexOf("--");
const direct = rest.slice(0, cut);
const tail = rest.slice(cut + 1);
const cut2 = tail.indexOf("--");
const gateway = cut2 < 0 ? tail : tail.slice(0, cut2);
const http = cut2 < 0 ? null : [tail[cut2 + 1]];

async function connect([command, ...args]) {
  const c = new Client({ name: "mandate-bench", version: "1.0.0" });
  const transport = command.startsWith("http")
    ? new StreamableHTTPClientTransport(new URL(command), {
        requestInit: { headers: { Authorization: `Bearer ${process.env.MANDATE_MCP_TOKEN}` } },
      })
    : new StdioClientTransport({ command, args, env: process.env, stderr: "ignore" });
  await c.connect(transport);
  return c;
}

const call = (c, i) => c.callTool({ name: "echo", arguments: { message: `m${i}` } });

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function latency(cmd) {
  const c = await connect(cmd);
  for (let i = 0; i < 200; i++) await call(c, i); // warm-up
  const t = [];
  for (let i = 0; i < seq; i++) {
    const t0 = process.hrtime.bigint();
    await call(c, i);
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  await c.close();
  t.sort((a, b) => a - b);
  return { p50: pct(t, 50), p90: pct(t, 90), p99: pct(t, 99), max: t[t.length - 1] };
}

async function throughput(cmd) {
  const cs = await Promise.all(Array.from({ length: clients }, () => connect(cmd)));
  for (const c of cs) await call(c, 0);
  let n = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    cs.map(async (c) => {
      while (Date.now() < end) {
        await call(c, n);
        n++;
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all(cs.map((c) => c.close()));
  return { calls: n, per_second: n / secs };
}

const out = {};
// Alternate the two so that neither always runs on a colder or busier machine.
out.direct_latency_ms = await latency(direct);
out.gateway_latency_ms = await latency(gateway);
out.added_ms = {
  p50: out.gateway_latency_ms.p50 - out.direct_latency_ms.p50,
  p90: out.gateway_latency_ms.p90 - out.direct_latency_ms.p90,
  p99: out.gateway_latency_ms.p99 - out.direct_latency_ms.p99,
};
out.direct_throughput = await throughput(direct);
out.gateway_throughput = await throughput(gateway);
if (http) {
  out.http_latency_ms = await latency(http);
  out.http_added_ms = {
    p50: out.http_latency_ms.p50 - out.direct_latency_ms.p50,
    p99: out.http_latency_ms.p99 - out.direct_latency_ms.p99,
  };
  out.http_throughput = await throughput(http);
}
console.log(JSON.stringify(out, null, 2));
