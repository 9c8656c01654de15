-- Shared by the wrk scripts that build each request in Lua (bench/api_message.lua,
-- bench/vk_callback.lua) and need ids no other request of the run has: numbers wrk's threads
-- 1..N (`thread_id`) and gives them all one `run_id` (12 hex: the start time and a random
-- part, so ids differ from run to run too). Load it with dofile() from the script's top level.
--
-- Runs in wrk's main Lua state, once per wrk thread, before any request: hand out ids.
-- Globals on purpose: thread:set() overwrites them in each thread's state.
local next_thread_id = 0
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
run_id = string.format("%08x%04x", os.time(), math.random(0, 0xffff))
thread_id = 0

function setup(thread)
  next_thread_id = next_thread_id + 1
  thread:set("thread_id", next_thread_id)
  thread:set("run_id", run_id)
end
