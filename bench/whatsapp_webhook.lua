-- wrk script: POST /v1/whatsapp/benchwa, signed WhatsApp Cloud API webhooks as Meta delivers
-- them, read from a file that bench/whatsapp_requests.py pre-generated (wrk's Lua cannot
-- compute HMAC-SHA256).
--
--   OMNIGATE_BENCH_WA_FILE=requests.txt OMNIGATE_BENCH_WA_THREADS=2 wrk -t2 -c32 -d10s --latency -s bench/whatsapp_webhook.lua http://127.0.0.1:PORT
--
-- Each line of the file is `<hex signature>\t<body>`. wrk thread k of T (T =
-- OMNIGATE_BENCH_WA_THREADS, wrk's -t: a thread's init runs before the next one exists, so the
-- script cannot count them itself) takes lines k, k+T,
-- k+2T... so no two threads send the same body, pre-formats them once (request() only hands
-- out the next one) and cycles through its share. Every message in the file has its own wamid:
-- as long as a thread does not wrap around, each 200 is a real signature check + parse +
-- normalize + PubAck of every message in the body. A wrap is counted and printed by done()
-- (those requests are duplicates: 200 without publishing); run.sh sizes the file so that it
-- does not happen and checks published messages against 2xx.
-- bench/noop_whatsapp.lua reuses this file with `path` set to /v1/noop, so the no-op baseline
-- puts the same bytes on the wire and costs wrk the same Lua work.

path = path or "/v1/whatsapp/benchwa"

local file = os.getenv("OMNIGATE_BENCH_WA_FILE")
if file == nil or file == "" then
  error("set OMNIGATE_BENCH_WA_FILE to a file written by bench/whatsapp_requests.py")
end
local thread_count = tonumber(os.getenv("OMNIGATE_BENCH_WA_THREADS") or "")
if thread_count == nil or thread_count < 1 then
  error("set OMNIGATE_BENCH_WA_THREADS to wrk's thread count (-t)")
end

-- Main Lua state: number the threads (globals on purpose: thread:set() writes them into each
-- thread's state) and keep them for done().
local threads = {}
thread_id = 0
wraps = 0

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_id", #threads)
end

-- Thread states.
local requests = {}
local next_request = 0

function init(args)
  local total = thread_count
  local f = assert(io.open(file, "rb"))
  local i = 0
  for line in f:lines() do
    if i % total == thread_id - 1 then
      local tab = line:find("\t", 1, true)
      local headers = {
        ["Content-Type"] = "application/json",
        ["X-Hub-Signature-256"] = "sha256=" .. line:sub(1, tab - 1),
      }
      requests[#requests + 1] = wrk.format("POST", path, headers, line:sub(tab + 1))
    end
    i = i + 1
  end
  f:close()
  if #requests == 0 then error("no requests for thread " .. thread_id .. " in " .. file) end
end

function request()
  next_request = next_request + 1
  if next_request > #requests then
    next_request = 1
    wraps = wraps + 1
  end
  return requests[next_request]
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("wraps") or 0) end
  io.write(string.format("wrapped around the request file: %d times\n", total))
end
