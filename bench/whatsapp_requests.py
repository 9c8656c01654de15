#!/usr/bin/env python3
"""Pre-generates signed WhatsApp Cloud API webhook requests for bench/run.sh (wrk's Lua cannot
compute an HMAC).

    bench/whatsapp_requests.py --secret HEX --count N --messages M --out FILE

Writes N lines, each `<hex HMAC-SHA256 of the body with the app secret>\t<body>`: one POST as
Meta sends it, `{"object":"whatsapp_business_account","entry":[...]}`, with M text messages
(`--messages 1`: a single message, the usual webhook; `--messages 100`: a batch) from rotating
Russian-speaking customers, Cyrillic text with emoji, non-ASCII as \\uXXXX and `/` as `\\/` the
way Meta serializes. Every message of every line has its own wamid, so none is a duplicate and
each 200 is M messages published. bench/whatsapp_webhook.lua cycles through the file.
"""
import argparse
import base64
import hashlib
import hmac
import json
import time

PHONE_NUMBER_ID = "106540352242922"   # bench/bench.yaml, account benchwa
DISPLAY_NUMBER = "15550783881"
WABA_ID = "102290129340398"

USERS = [
    ("Анна Смирнова", "79161234567", "RU.1487203956112834"),
    ("Дмитрий Козлов", "79037654321", "RU.2290457718346019"),
    ("Ольга Никитина", "79649876543", "RU.4402918837465102"),
    ("Сергей Орлов", "79101112233", "RU.1175390046628813"),
]
TEXTS = [
    "Здравствуйте! 🌷 Хочу заказать букет тюльпанов к 8 Марта, вот пример: https://lavka.example.ru/catalog/tulips-25",
    "Добрый день! Заказ №48213 пришёл без зарядки 😕 Перезвоните, пожалуйста: +7 912 345-67-89",
    "Есть ли доставка в Екатеринбург до пятницы? 🚚 Счёт для юрлица пришлите на zakupki@example.ru",
    "Спасибо, всё получила 👍👍 Оставлю отзыв на сайте, курьер был очень вежливый!",
]


def wamid(wa_id, n):
    # The shape of a real inbound wamid: "wamid.HBgL" + base64 of the sender's number and a
    # 20-character message id; the id here is a per-run counter, so every wamid is distinct.
    raw = bytes([len(wa_id)]) + wa_id.encode() + b"\x15\x02\x00\x12\x18\x14" + \
        ("3A%018X" % n).encode() + b"\x00"
    return "wamid." + base64.b64encode(bytes([0x1C, 0x18]) + raw).decode()


def body(first, count, run_id, ts):
    contacts, messages, seen = [], [], set()
    for i in range(first, first + count):
        name, wa_id, user_id = USERS[i % len(USERS)]
        if wa_id not in seen:
            seen.add(wa_id)
            contacts.append({"profile": {"name": name}, "wa_id": wa_id, "user_id": user_id})
        messages.append({"from": wa_id, "from_user_id": user_id,
                         "id": wamid(wa_id, run_id * 10**12 + i), "timestamp": str(ts + i % 60),
                         "type": "text", "text": {"body": TEXTS[(i // len(USERS)) % len(TEXTS)]}})
    doc = {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
                  "contacts": contacts, "messages": messages},
        "field": "messages"}]}]}
    # ensure_ascii: \uXXXX (surrogate pairs for emoji); "/" only occurs inside strings.
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--messages", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    key = a.secret.encode()
    run_id = int(time.time()) % 100000          # distinct wamids across runs on one stream too
    ts = int(time.time())
    with open(a.out, "w", encoding="ascii") as f:
        for n in range(a.count):
            b = body(n * a.messages, a.messages, run_id, ts).encode()
            f.write(hmac.new(key, b, hashlib.sha256).hexdigest() + "\t" + b.decode() + "\n")


if __name__ == "__main__":
    main()
