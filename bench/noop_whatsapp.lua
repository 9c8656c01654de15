-- wrk script: the same requests as bench/whatsapp_webhook.lua (same file, same headers, same
-- bodies, same Lua work in wrk), sent to POST /v1/noop, which answers 202 through the same HTTP
-- server and thread pool without checking, parsing or publishing. It is the ceiling the WhatsApp
-- webhook is compared to, for the single-message file (w0) and the 100-message batch (w100-0).
path = "/v1/noop"
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "whatsapp_webhook.lua")
