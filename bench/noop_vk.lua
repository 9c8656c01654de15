-- wrk script: the same requests as bench/vk_callback.lua (same headers, same bodies, same Lua
-- work in wrk), sent to POST /v1/noop, which answers 202 through the same HTTP server and thread
-- pool without checking, parsing or publishing. It is the ceiling the VK Callback path is
-- compared to, as bench/noop_telegram.lua is for the Telegram webhook.
path = "/v1/noop"
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "vk_callback.lua")
