-- wrk script: the same request as bench/api_message.lua (same headers, same body, same Lua
-- work in wrk), sent to POST /v1/noop, which answers 202 through the same HTTP server and
-- thread pool without parsing or publishing. It is the ceiling the API channel is compared to.
path = "/v1/noop"
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "api_message.lua")
