-- wrk script for scripts/bench: POST one pre-signed token request body per request, each body
-- used once (the servers refuse a replayed client assertion), and print one JSON line at the end
-- in the same shape as examples/loadgen.
-- Usage: wrk -t T -c C -d Ns -s wrk-bodies.lua URL -- BODIES_FILE T LABEL
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- Each thread formats its share of the requests before the run, so that the run measures the
-- servers, not the Lua that builds requests.
function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  prepared = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then prepared[#prepared + 1] = wrk.format("POST", nil, headers, line) end
    i = i + 1
  end
  n = 0
  exhausted = 0
end

function request()
  n = n + 1
  if n > #prepared then
    -- Out of fresh requests: a reused one is refused as a replay and counted as an error.
    exhausted = exhausted + 1
    n = 1
  end
  return prepared[n]
end

function done(summary, latency, requests)
  local label = os.getenv("WRK_LABEL") or "run"
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    '{"label":"%s","mode":"closed loop (wrk)","concurrency":%d,"requests":%d,"errors":%d,' ..
    '"tokens_per_s":%.0f,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f}\n',
    label, tonumber(os.getenv("WRK_CONNECTIONS") or "0"), summary.requests, errors,
    (summary.requests - errors) / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
