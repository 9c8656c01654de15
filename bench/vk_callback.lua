-- wrk script: POST /v1/vk/benchvk, VK Callback API `message_new` events as VK delivers them.
--
--   OMNIGATE_BENCH_VK_SECRET=... wrk -t2 -c32 -d10s --latency -s bench/vk_callback.lua http://127.0.0.1:PORT
--
-- Each request is the real envelope {group_id, type, event_id, v: "5.199", object: {message,
-- client_info}, secret} (the shapes of connectors/vk/fixtures/message_new_*.json) for the
-- community of bench/bench.yaml (group_id 218765432), in a rotation of four: a private text
-- with emoji (~700 B), a private text with a photo of ten sizes (~4.3 KB), a private text with
-- a phone number (~680 B) and a group chat message (peer_id 2000000004, id 0, ~640 B). VK
-- writes UTF-8 as is and `/` as `\/`; so do these bodies. The Callback secret is in the body
-- (OMNIGATE_BENCH_VK_SECRET, the account's `secret`).
-- The event_id (40 hex, VK's dedup key) is run id + wrk thread id + counter, so no
-- two requests of a run share one and the gateway never answers from its dedup path: each `ok`
-- is a real secret and group check + parse + mapping + PubAck. Message ids, photo ids,
-- conversation_message_id and version grow with the counter as they would in a community.
-- bench/noop_vk.lua reuses this file with `path` set to /v1/noop, so the no-op baseline puts
-- the same bytes on the wire and costs wrk the same Lua work.

path = path or "/v1/vk/benchvk"

local secret = os.getenv("OMNIGATE_BENCH_VK_SECRET")
if secret == nil or secret == "" or secret:find("[^%w]") then
  error("set OMNIGATE_BENCH_VK_SECRET to the account's Callback secret (letters and digits)")
end

-- thread_id and run_id (bench/thread_ids.lua; its setup() numbers wrk's threads).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "thread_ids.lua")

-- Thread states. The templates' $names are filled per request; $secret once.
local templates = {
  -- a private text with emoji and a line break (message_new_text_ru_emoji)
  [=[{"group_id":218765432,"type":"message_new","event_id":"$event","v":"5.199","object":{"message":{"date":$date,"from_id":512345678,"id":$id,"out":0,"version":$version,"attachments":[],"conversation_message_id":$cmid,"fwd_messages":[],"important":false,"is_hidden":false,"peer_id":512345678,"random_id":0,"text":"Здравствуйте! 👋 Есть ли платье из новой коллекции в размере 44? 🙏\nХочу забрать в субботу."},"client_info":{"button_actions":["text","vkpay","open_app","location","open_link","callback","intent_subscribe","intent_unsubscribe"],"keyboard":true,"inline_keyboard":true,"carousel":true,"lang_id":0}},"secret":"$secret"}]=],
  -- a private text with a photo, every size VK sends (message_new_photo_sizes)
  [=[{"group_id":218765432,"type":"message_new","event_id":"$event","v":"5.199","object":{"message":{"date":$date,"from_id":642391857,"id":$id,"out":0,"version":$version,"attachments":[{"type":"photo","photo":{"album_id":-3,"date":$date,"id":$photo,"owner_id":642391857,"access_key":"8f3c2a91d0b7e45a6c","sizes":[{"height":56,"type":"s","width":75,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=75x56"},{"height":97,"type":"m","width":130,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=130x97"},{"height":453,"type":"x","width":604,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=604x453"},{"height":605,"type":"y","width":807,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=807x605"},{"height":960,"type":"z","width":1280,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=1280x960"},{"height":1920,"type":"w","width":2560,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=2560x1920"},{"height":97,"type":"o","width":130,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=130x97"},{"height":150,"type":"p","width":200,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=200x150"},{"height":240,"type":"q","width":320,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=320x240"},{"height":382,"type":"r","width":510,"url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu&cs=510x382"}],"text":"","web_view_token":"5d0e9a4c2b1f7e3a86","has_tags":false,"orig_photo":{"height":1920,"type":"base","url":"https:\/\/sun9-42.userapi.com\/s\/v1\/ig2\/7Yq3kXcP0aVb2Ws9Lr4NfG8hJm1TdQe6ZuKoRi5SxCyEvBnMwAlHgFjUtIpOzD3KqL9sWx2VbNc.jpg?quality=95&as=32x24,48x36,72x54,108x81,160x120,240x180,360x270,480x360,540x405,640x480,720x540,1080x810,1280x960,1440x1080,2560x1920&from=bu","width":2560}}}],"conversation_message_id":$cmid,"fwd_messages":[],"important":false,"is_hidden":false,"peer_id":642391857,"random_id":0,"text":"Вот такое платье хочу, но в синем цвете 💙"},"client_info":{"button_actions":["text","vkpay","open_app","location","open_link","callback","intent_subscribe","intent_unsubscribe"],"keyboard":true,"inline_keyboard":true,"carousel":true,"lang_id":0}},"secret":"$secret"}]=],
  -- a private text with a phone number in it
  [=[{"group_id":218765432,"type":"message_new","event_id":"$event","v":"5.199","object":{"message":{"date":$date,"from_id":619876543,"id":$id,"out":0,"version":$version,"attachments":[],"conversation_message_id":$cmid,"fwd_messages":[],"important":false,"is_hidden":false,"peer_id":619876543,"random_id":0,"text":"Добрый день! Заказ №48213 пришёл без зарядки 😕 Перезвоните, пожалуйста: +7 912 345-67-89"},"client_info":{"button_actions":["text","vkpay","open_app","location","open_link","callback","intent_subscribe","intent_unsubscribe"],"keyboard":true,"inline_keyboard":true,"carousel":true,"lang_id":0}},"secret":"$secret"}]=],
  -- a group chat (peer_id >= 2000000000): bots get id 0 (message_new_group_chat)
  [=[{"group_id":218765432,"type":"message_new","event_id":"$event","v":"5.199","object":{"message":{"date":$date,"from_id":187654321,"id":0,"out":0,"version":$version,"attachments":[],"conversation_message_id":$cmid,"fwd_messages":[],"important":false,"is_hidden":false,"peer_id":2000000004,"random_id":0,"text":"Коллеги, кто заказывал торт на пятницу? 🎂 Курьер уже внизу"},"client_info":{"button_actions":["text","vkpay","open_app","location","open_link","callback","intent_subscribe","intent_unsubscribe"],"keyboard":true,"inline_keyboard":true,"carousel":true,"lang_id":0}},"secret":"$secret"}]=],
}

-- A template as its literal pieces and the names between them: a request is one concat.
local function compile(template)
  template = template:gsub("%$secret", secret)
  local pieces, names, pos = {}, {}, 1
  while true do
    local from, to, name = template:find("%$(%a+)", pos)
    if not from then break end
    pieces[#pieces + 1] = template:sub(pos, from - 1)
    names[#names + 1] = name
    pos = to + 1
  end
  pieces[#pieces + 1] = template:sub(pos)
  return { pieces = pieces, names = names }
end

local compiled = {}
local counter = 0
local date
local headers = { ["Content-Type"] = "application/json" }
local event_prefix

function init(args)
  -- 40 hex like VK's: run (12) + thread (20) + counter (8, in request()).
  event_prefix = run_id .. string.format("%020x", thread_id)
  for i, t in ipairs(templates) do compiled[i] = compile(t) end
  date = os.time()
end

function request()
  counter = counter + 1
  local values = {
    event = event_prefix .. string.format("%08x", counter),
    date = tostring(date + math.floor(counter / 1000)),
    id = tostring(thread_id * 100000000 + 48000 + counter),
    photo = tostring(457240000 + thread_id * 100000000 + counter),
    cmid = tostring(200 + counter),
    version = tostring(10000000 + thread_id * 100000000 + counter),
  }
  local c = compiled[counter % #compiled + 1]
  local out = {}
  for i, name in ipairs(c.names) do
    out[#out + 1] = c.pieces[i]
    out[#out + 1] = values[name]
  end
  out[#out + 1] = c.pieces[#c.pieces]
  return wrk.format("POST", path, headers, table.concat(out))
end
