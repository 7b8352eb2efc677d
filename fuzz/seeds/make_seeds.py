#!/usr/bin/env python3
"""Writes the committed seed inputs of the fuzz targets (fuzz/seeds/<target>/).

Deterministic: running it again rewrites the same files. Real client frames, real
WebSocket frame bytes (the cases of tests/integration/ws_conformance.rs among them) and engine step
sequences in the byte format of `Scenario::decode` (src/engine/invariants.rs).
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    directory = os.path.join(HERE, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


# -- client_message: the text of client frames --------------------------------------

CLIENT_MESSAGES = {
    "ping": '{"t":"ping"}',
    "bet": '{"t":"bet","req":"r-1","amount":100}',
    "bet_auto_slot": '{"t":"bet","req":"r-2","amount":2500,"auto":200,"slot":1}',
    "cashout": '{"t":"cashout","req":"r-3"}',
    "cashout_slot": '{"t":"cashout","req":"r-4","slot":1}',
    "not_json": "{not json",
    "empty": "",
    "null": "null",
    "array": "[]",
    "number": "42",
    "string": '"ping"',
    "unknown_type": '{"t":"launch"}',
    "type_number": '{"t":5}',
    "no_type": '{"req":"x","amount":1}',
    "type_null": '{"t":null}',
    "empty_req": '{"t":"bet","req":"","amount":100}',
    "req_64": '{"t":"cashout","req":"%s"}' % ("x" * 64),
    "req_65": '{"t":"cashout","req":"%s"}' % ("x" * 65),
    "amount_negative": '{"t":"bet","req":"n","amount":-5}',
    "amount_i64_max": '{"t":"bet","req":"m","amount":9223372036854775807}',
    "amount_overflow": '{"t":"bet","req":"o","amount":9223372036854775808}',
    "amount_float": '{"t":"bet","req":"f","amount":1.5}',
    "amount_string": '{"t":"bet","req":"s","amount":"100"}',
    "slot_256": '{"t":"bet","req":"s","amount":100,"slot":256}',
    "slot_negative": '{"t":"cashout","req":"s","slot":-1}',
    "auto_u64_max": '{"t":"bet","req":"a","amount":100,"auto":18446744073709551615}',
    "auto_null": '{"t":"bet","req":"a","amount":100,"auto":null}',
    "duplicate_type": '{"t":"bet","t":"cashout","req":"d"}',
    "unicode_req": '{"t":"cashout","req":"κόσμε-€-😀"}',
    "escaped_req": '{"t":"cashout","req":"\\u00e9\\ud83d\\ude00\\n"}',
    "lone_surrogate": '{"t":"cashout","req":"\\ud800"}',
    "extra_fields": '{"t":"ping","x":[1,2,{"y":null}],"z":true}',
    "deep_nesting": '{"t":"ping","x":%s}' % ("[" * 200 + "]" * 200),
    "whitespace": ' \n\t{ "t" : "ping" } \r\n',
    "trailing_garbage": '{"t":"ping"}}',
}

for name, text in CLIENT_MESSAGES.items():
    write("client_message", name, text.encode())

# -- websocket_read: two setup bytes (early bytes, read chunk size), then frames -------

MASK = b"\x37\xfa\x21\x3d"
FIN, RSV1, RSV2, RSV3 = 0x80, 0x40, 0x20, 0x10
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(first_byte, payload, mask=MASK):
    header = bytes([first_byte])
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n <= 125:
        header += bytes([mask_bit | n])
    elif n <= 0xFFFF:
        header += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        header += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return header + payload
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def text(message):
    return frame(FIN | TEXT, message.encode())


def close(code, reason=b""):
    return frame(FIN | CLOSE, struct.pack(">H", code) + reason)


WEBSOCKET_CASES = {
    "ping_message": text('{"t":"ping"}'),
    "bet_then_cashout": text(CLIENT_MESSAGES["bet_auto_slot"]) + text(CLIENT_MESSAGES["cashout"]),
    "bad_json": text("{not json"),
    "unicode": text(CLIENT_MESSAGES["unicode_req"]),
    "fragmented": frame(TEXT, b'{"t":') + frame(CONT, b'"pi') + frame(FIN | CONT, b'ng"}'),
    "control_between_fragments": frame(TEXT, b'{"t":') + frame(FIN | PING, b"between")
    + frame(FIN | PONG, b"x") + frame(FIN | CONT, b'"ping"}'),
    "ping_125": frame(FIN | PING, bytes(range(125))),
    "ping_126": frame(FIN | PING, b"x" * 126),
    "ping_flood": frame(FIN | PING, b"") * 60,
    "fragmented_ping": frame(PING, b"part") + frame(FIN | CONT, b"rest"),
    "pong": frame(FIN | PONG, b"unsolicited") + text('{"t":"ping"}'),
    "rsv1": frame(FIN | RSV1 | TEXT, b'{"t":"ping"}'),
    "rsv2": frame(FIN | RSV2 | TEXT, b'{"t":"ping"}'),
    "rsv3_ping": frame(FIN | RSV3 | PING, b"hi"),
    "opcode_3": frame(FIN | 0x3, b"data"),
    "opcode_b": frame(FIN | 0xB, b""),
    "unmasked": frame(FIN | TEXT, b'{"t":"ping"}', mask=None),
    "continuation_first": frame(FIN | CONT, b'{"t":"ping"}'),
    "text_inside_fragments": frame(TEXT, b'{"t":') + text('{"t":"ping"}'),
    "invalid_utf8": frame(FIN | TEXT, b'{"t":"ping","x":"\x80"}'),
    "utf8_split": frame(TEXT, '{"t":"cashout","req":"€'.encode()[:-1])
    + frame(FIN | CONT, '€"}'.encode()[2:]),
    "utf8_truncated": frame(TEXT, b'{"t":"ping"}') + frame(FIN | CONT, b"\xe2\x82"),
    "close_1000": close(1000, b"bye"),
    "close_1005": close(1005),
    "close_5000": close(5000),
    "close_empty": frame(FIN | CLOSE, b""),
    "close_1_byte": frame(FIN | CLOSE, b"\x03"),
    "close_bad_reason": close(1000, b"bad \xff"),
    "after_close": close(1000) + text('{"t":"ping"}'),
    "binary": frame(FIN | BINARY, b"\x01\x02\x03"),
    "length_16": text('{"t":"bet","req":"long","amount":100}' + " " * 300),
    "length_64_too_big": frame(FIN | TEXT, b" " * 5000),
    "fragments_too_big": frame(TEXT, b" " * 2100) + frame(FIN | CONT, b" " * 2100),
}

# Setups: everything read at once, after some early bytes, or one byte per read.
SETUPS = {"": b"\x00\xff", "_early": b"\x05\xff", "_bytewise": b"\x00\x01"}
for name, data in WEBSOCKET_CASES.items():
    setups = SETUPS if name in ("ping_message", "fragmented", "utf8_split", "bet_then_cashout") else {"": SETUPS[""]}
    for suffix, setup in setups.items():
        write("websocket_read", name + suffix, setup + data)

# -- engine_steps: salt byte, max-profit byte, then steps (see Step::decode) ----------


def clock(ms):
    """The clock step nearest above `ms` (b² ms)."""
    b = 0
    while b * b < ms and b < 255:
        b += 1
    return bytes([0, b])


ADVANCE = bytes([64])
FAULT = bytes([224])
ABORT = bytes([255])


def bet(player, req, amount, auto=None, slot=0):
    unit = 0 if auto is None else max(1, min(255, (auto - 95) // 4))
    return bytes([112, player, req]) + struct.pack("<H", amount + 100) + bytes([unit, slot])


def cashout(player, req, slot=0):
    return bytes([176, player, req, slot])


def wake(ms):
    return clock(ms) + ADVANCE


OPENING = bet(2, 0, 1000) + bet(3, 0, 5000, auto=150, slot=1) + bet(3, 1, 200)
FLIGHT = wake(1000) + wake(900) + cashout(2, 0) + wake(2000) + wake(5000)
TO_NEXT_ROUND = wake(65025) + wake(600)

ENGINE_CASES = {
    "one_round": OPENING + FLIGHT + TO_NEXT_ROUND,
    "insufficient_funds": bet(1, 0, 600) + bet(0, 0, 10) + bet(1, 1, 500) + FLIGHT,
    "invalid_fields": bet(2, 0, -100) + bet(2, 1, 12000) + bet(2, 2, 100, auto=99)
    + bet(2, 3, 100, slot=2) + cashout(2, 4, slot=2),
    "replays": bet(2, 0, 1000) + bet(2, 0, 1000) + bet(2, 0, 2000, slot=1)
    + wake(1000) + wake(900) + cashout(2, 0) + cashout(2, 0) + cashout(2, 1),
    "fault_then_retry": FAULT + bet(2, 0, 1000) + bet(2, 0, 1000) + FLIGHT,
    "fault_during_cashout": OPENING + wake(1000) + wake(900) + FAULT + cashout(2, 0)
    + cashout(2, 0) + cashout(2, 0) + wake(100) + cashout(2, 0),
    "profit_cap": bet(3, 0, 10000, auto=1000) + bet(3, 1, 10000) + bet(2, 0, 5000, auto=300)
    + wake(1000) + wake(3000) + wake(10000) + wake(20000) + wake(65025),
    "abort_betting": OPENING + ABORT + wake(5000),
    "abort_flying": OPENING + wake(1000) + wake(500) + ABORT + cashout(3, 0),
    "abort_with_credit_owed": OPENING + wake(1000) + wake(900) + FAULT + cashout(2, 0) + FAULT + ABORT,
    "abort_after_crash": OPENING + FLIGHT + wake(65025) + ABORT,
    "late_commands": bet(2, 0, 100) + clock(1000) + bet(2, 1, 100) + cashout(2, 0)
    + ADVANCE + cashout(2, 0) + clock(65025) + cashout(2, 0) + ADVANCE + cashout(2, 0),
    "auto_cashouts_skipped_ticks": bet(2, 0, 1000, auto=101) + bet(3, 0, 1000, auto=110)
    + bet(3, 1, 1000, auto=120) + wake(1000) + wake(60000),
    "many_rounds": (OPENING + FLIGHT + TO_NEXT_ROUND) * 12,
    "long_idle": wake(65025) * 40,
}
for cap in (0, 9, 255):
    for salt in (1, 77):
        ENGINE_CASES[f"round_salt{salt}_cap{cap}"] = (
            bytes([salt, cap]) + OPENING + FLIGHT + TO_NEXT_ROUND
        )

for name, steps in ENGINE_CASES.items():
    data = steps if name.startswith("round_salt") else bytes([0, 50]) + steps
    write("engine_steps", name, data)
