-- wrk script: the same request as bench/telegram_update.lua (same headers, same body, same Lua
-- work in wrk), sent to POST /v1/noop, which answers 202 through the same HTTP server and
-- thread pool without checking, parsing or publishing. It is the ceiling the Telegram webhook
-- is compared to, as bench/noop.lua is for the API channel.
path = "/v1/noop"
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "telegram_update.lua")
