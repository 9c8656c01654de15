-- wrk script: POST /v1/api/bench, one realistic interaction.v1 submission per request.
--
--   OMNIGATE_BENCH_TOKEN=... wrk -t2 -c32 -d10s --latency -s bench/api_message.lua http://127.0.0.1:PORT
--
-- Every request carries a unique Idempotency-Key (run id + wrk thread id + counter), so the
-- gateway never answers from its dedup path: each 202 is a real parse + normalize + PubAck.
-- bench/noop.lua reuses this file with `path` set to /v1/noop, so both scenarios put the
-- same bytes on the wire and cost wrk the same Lua work.

path = path or "/v1/api/bench"

local token = os.getenv("OMNIGATE_BENCH_TOKEN")
if token == nil or token == "" then
  error("set OMNIGATE_BENCH_TOKEN to the API channel's bearer token")
end

-- thread_id and run_id (bench/thread_ids.lua; its setup() numbers wrk's threads).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "thread_ids.lua")

-- Runs in each thread's own Lua state.
local counter = 0
local prefix

-- A few contacts, as a call-tracking service or shop backend would send them.
local contacts = {
  { name = "Иван Петров",       phone = "8 (912) 345-67-89",  email = "ivan@example.ru" },
  { name = "Мария Соколова",    phone = "+7 903 123-45-67",   email = "m.sokolova@example.ru" },
  { name = "Алексей Смирнов",   phone = "8-800-555-35-35",    email = "smirnov.a@example.com" },
  { name = "Екатерина Волкова", phone = "+7 (495) 987 65 43", email = "kate.volkova@example.org" },
}

local texts = {
  "Здравствуйте! Хочу заказать обратный звонок 📞 Удобно после 18:00 по Москве, " ..
    "интересует доставка в Екатеринбург и оплата по счёту для юрлица.",
  "Добрый день. Заказ №48213 пришёл не полностью: нет зарядного устройства. " ..
    "Подскажите, как оформить возврат или довоз? Спасибо!",
  "Подскажите, пожалуйста, есть ли модель в наличии в магазине на Тверской? " ..
    "Готов забрать сегодня, оплата картой 💳",
  "Менеджер обещал перезвонить ещё вчера, но звонка так и не было. " ..
    "Прошу связаться со мной по телефону или написать на почту.",
}

function init(args)
  prefix = string.format("%s-%d-", run_id, thread_id)
end

local function json_escape(s)
  return (s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end))
end

-- Pre-escape once; per request only the ids change.
for _, c in ipairs(contacts) do
  c.name, c.phone, c.email = json_escape(c.name), json_escape(c.phone), json_escape(c.email)
end
for i, t in ipairs(texts) do texts[i] = json_escape(t) end

local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. token,
}

function request()
  counter = counter + 1
  local key = prefix .. counter
  local c = contacts[counter % #contacts + 1]
  headers["Idempotency-Key"] = key
  local body = '{"kind":"message","occurred_at":"2026-11-22T09:30:00Z",' ..
    '"contact":{"display_name":"' .. c.name .. '","identifiers":[' ..
    '{"type":"phone","raw":"' .. c.phone .. '"},' ..
    '{"type":"email","value":"' .. c.email .. '"}]},' ..
    '"message":{"native_id":"m-' .. key .. '","text":"' .. texts[counter % #texts + 1] .. '"}}'
  return wrk.format("POST", path, headers, body)
end
