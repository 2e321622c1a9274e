-- wrk script: POST realistic customer messages to filterd, each with a new message id.
--
-- wrk is Debian's package (`apt-get install -y wrk`, 4.1). Usage (bench_service.py runs it):
--   wrk -t1 -c16 -d10s -s benchmarks/wrk_messages.lua http://127.0.0.1:8080 -- TEXTS BATCH TAG
-- TEXTS: a file of JSON-encoded strings, one a line (bench_service.py writes it from
-- benchmarks/corpus.py); BATCH: 1 posts /v1/messages, N > 1 posts /v1/messages:batch with N
-- messages; TAG: a prefix that keeps this run's ids apart from earlier runs' ids.
-- Messages are spread over many conversations (ids cycle through 5,000 per thread), as a
-- contact centre's traffic is, so per-conversation limits and ordering never bind.
-- done() prints one line "WRKJSON {...}" with counts and latency percentiles (microseconds);
-- "degraded" counts messages whose verdict was made without the model.

local threads = {}
local counter = 0
local texts = {}
local batch = 1
local tag = "r"
degraded = 0  -- verdicts judged without the model (global: done() reads it per thread)

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  batch = tonumber(args[2] or "1")
  tag = (args[3] or "r") .. "t" .. tostring(tid)
  for line in io.lines(path) do
    if #line > 0 then table.insert(texts, line) end
  end
  if #texts == 0 then error("no texts in " .. tostring(path)) end
end

local function message()
  counter = counter + 1
  local text = texts[(counter % #texts) + 1]
  return '{"conversation_id":"' .. tag .. "c" .. tostring(counter % 5000) ..
    '","message_id":"' .. tag .. "m" .. tostring(counter) ..
    '","channel":"chat","sender":{"role":"customer","id":"u' .. tostring(counter % 5000) ..
    '"},"text":' .. text .. '}'
end

function request()
  local headers = {["Content-Type"] = "application/json"}
  if batch <= 1 then
    return wrk.format("POST", "/v1/messages", headers, message())
  end
  local parts = {}
  for i = 1, batch do parts[i] = message() end
  return wrk.format("POST", "/v1/messages:batch", headers,
                    '{"messages":[' .. table.concat(parts, ",") .. ']}')
end

-- A 200 whose verdict says "degraded" (the model was skipped: busy, timed out, failing) is
-- counted: a run is only clean if every message was judged by the model.
function response(status, headers, body)
  if status == 200 then
    for _ in string.gmatch(body, '"degraded":true') do degraded = degraded + 1 end
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("degraded") end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"degraded":%d,"non2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, bad, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean))
end
