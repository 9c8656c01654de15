-- wrk script: POST /v1/telegram/benchbot, one realistic Bot API Update per request, as
-- Telegram's webhook delivers it.
--
--   OMNIGATE_BENCH_TG_SECRET=... wrk -t2 -c32 -d10s --latency -s bench/telegram_update.lua http://127.0.0.1:PORT
--
-- Each request is a private-chat `message` (Cyrillic text with emoji, `from` with
-- language_code "ru", `chat`, `date`, `entities` with offsets in UTF-16 code units) from one
-- of a few rotating users. Every request has a unique update_id (wrk thread id × 10^9 +
-- counter), so the gateway never answers from its dedup path: each 200 {"ok":true} is a real
-- secret check + parse + normalize + PubAck. Non-ASCII text is sent as \uXXXX escapes
-- (surrogate pairs for emoji), the way the Bot API serializes updates.
-- bench/noop_telegram.lua reuses this file with `path` set to /v1/noop, so the no-op baseline
-- puts the same bytes on the wire and costs wrk the same Lua work.

path = path or "/v1/telegram/benchbot"

local secret = os.getenv("OMNIGATE_BENCH_TG_SECRET")
if secret == nil or secret == "" then
  error("set OMNIGATE_BENCH_TG_SECRET to the bot's secret_token")
end

-- Runs in wrk's main Lua state, once per wrk thread, before any request: hand out ids.
-- Globals on purpose: thread:set() overwrites them in each thread's state.
local next_thread_id = 0
thread_id = 0

function setup(thread)
  next_thread_id = next_thread_id + 1
  thread:set("thread_id", next_thread_id)
end

-- Runs in each thread's own Lua state.
local counter = 0
local update_prefix
local date

-- JSON string contents as the Bot API writes them: ASCII as is (quote, backslash and control
-- characters escaped), everything else \uXXXX, astral characters as a UTF-16 surrogate pair.
local function json_escape(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    local cp, len
    if b < 0x80 then cp, len = b, 1
    elseif b >= 0xF0 then
      cp, len = (b - 0xF0) * 0x40000 + (s:byte(i + 1) - 0x80) * 0x1000 +
        (s:byte(i + 2) - 0x80) * 0x40 + (s:byte(i + 3) - 0x80), 4
    elseif b >= 0xE0 then
      cp, len = (b - 0xE0) * 0x1000 + (s:byte(i + 1) - 0x80) * 0x40 + (s:byte(i + 2) - 0x80), 3
    else
      cp, len = (b - 0xC0) * 0x40 + (s:byte(i + 1) - 0x80), 2
    end
    if cp == 0x22 then out[#out + 1] = '\\"'
    elseif cp == 0x5C then out[#out + 1] = "\\\\"
    elseif cp == 0x0A then out[#out + 1] = "\\n"
    elseif cp >= 0x20 and cp < 0x7F then out[#out + 1] = string.char(cp)
    elseif cp >= 0x10000 then
      local v = cp - 0x10000
      out[#out + 1] = string.format("\\u%04x\\u%04x", 0xD800 + math.floor(v / 0x400), 0xDC00 + v % 0x400)
    else
      out[#out + 1] = string.format("\\u%04x", cp)
    end
    i = i + len
  end
  return table.concat(out)
end

-- Length of a UTF-8 string in UTF-16 code units (what Telegram's entity offsets count).
local function utf16_len(s)
  local units = 0
  for i = 1, #s do
    local b = s:byte(i)
    if b < 0x80 or (b >= 0xC0 and b < 0xF0) then units = units + 1
    elseif b >= 0xF0 then units = units + 2 end
  end
  return units
end

-- Private chats with a few customers of a shop bot (ids below 2^52, as the Bot API promises).
local users = {
  { id = 5512345678, first_name = "Анна",      last_name = "Смирнова", username = "anna_smirnova", message_id = 2301 },
  { id = 1029384756, first_name = "Дмитрий",   last_name = "Козлов",   username = "dkozlov",       message_id = 418 },
  { id = 6203948571, first_name = "Ольга",     last_name = "Никитина", username = "olga_nik",      message_id = 77 },
  { id = 398127465,  first_name = "Сергей",    last_name = "Орлов",    username = "s_orlov_spb",   message_id = 15032 },
}

-- What customers type; entities are the ones Telegram detects on its own (url, phone_number,
-- email, hashtag) plus formatting a user may apply (bold).
local texts = {
  { text = "Здравствуйте! 🌷 Хочу заказать букет тюльпанов к 8 Марта, вот пример: https://lavka.example.ru/catalog/tulips-25",
    entities = { { "bold", "букет тюльпанов" }, { "url", "https://lavka.example.ru/catalog/tulips-25" } } },
  { text = "Добрый день! Заказ №48213 пришёл без зарядки 😕 Перезвоните, пожалуйста: +7 912 345-67-89",
    entities = { { "phone_number", "+7 912 345-67-89" } } },
  { text = "Есть ли доставка в Екатеринбург до пятницы? 🚚 Счёт для юрлица пришлите на zakupki@example.ru #доставка",
    entities = { { "email", "zakupki@example.ru" }, { "hashtag", "#доставка" } } },
  { text = "Спасибо, всё получила 👍👍 Оставлю отзыв на сайте, курьер был очень вежливый!",
    entities = { { "bold", "очень вежливый" } } },
}

-- Pre-render once: per request only update_id, message_id and the pairing change.
local function names(u)
  return '"first_name":"' .. json_escape(u.first_name) .. '","last_name":"' ..
    json_escape(u.last_name) .. '","username":"' .. u.username .. '"'
end
for _, u in ipairs(users) do
  local id = string.format("%.0f", u.id)
  u.from = '{"id":' .. id .. ',"is_bot":false,' .. names(u) .. ',"language_code":"ru"}'
  u.chat = '{"id":' .. id .. "," .. names(u) .. ',"type":"private"}'
end
for _, t in ipairs(texts) do
  local parts = {}
  for _, e in ipairs(t.entities) do
    local at = t.text:find(e[2], 1, true)
    if not at then error("entity '" .. e[2] .. "' not in text") end
    parts[#parts + 1] = string.format('{"offset":%d,"length":%d,"type":"%s"}',
      utf16_len(t.text:sub(1, at - 1)), utf16_len(e[2]), e[1])
  end
  t.json = '"text":"' .. json_escape(t.text) .. '","entities":[' .. table.concat(parts, ",") .. "]"
end

function init(args)
  update_prefix = tostring(thread_id)  -- update_id = thread_id * 10^9 + counter
  date = os.time()
end

local headers = {
  ["Content-Type"] = "application/json",
  ["X-Telegram-Bot-Api-Secret-Token"] = secret,
}

function request()
  counter = counter + 1
  local u = users[counter % #users + 1]
  local t = texts[math.floor(counter / #users) % #texts + 1]
  local body = '{"update_id":' .. update_prefix .. string.format("%09d", counter) ..
    ',"message":{"message_id":' .. (u.message_id + counter) ..
    ',"from":' .. u.from .. ',"chat":' .. u.chat ..
    ',"date":' .. date .. "," .. t.json .. "}}"
  return wrk.format("POST", path, headers, body)
end
