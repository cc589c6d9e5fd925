"""Seeds for fuzz_pbjson: a selector byte (the request message, see fuzz_pbjson.c) and a
JSON body, valid and not. Run: python3 fuzz/http/make_corpus.py"""
import hashlib
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
seeds = [
    (0, '{"logId":"b9b0e8ca-ccd6-4d64-8ccd-4022d5bc474e","entries":[{"textPayload":"a\\u0000b",'
        '"severity":"INFO","labels":{"k":"v"},"insertId":"i","time":"2026-01-02T03:04:05.123Z"},'
        '{"jsonPayload":{"n":1.5,"l":[null,true,"s",{"o":{}}]},"severity":300}],'
        '"wait":"WAIT_DURABLE"}'),
    (0, '{"entries":[{"textPayload":"x","jsonPayload":{}}]}'),
    (0, '{"entries":{"a":1}}'),
    (1, '{"labels":{"job":"build","\\u00e9":"\\ud83d\\ude00"}}'),
    (2, '{"log_id":"x","startTime":"2026-12-07T12:00:00+01:00","endTime":"9999-12-31T23:59:59Z",'
        '"pageSize":"10","pageToken":"abc","textContains":"e","minSeverity":700}'),
    (2, '{"startTime":"0001-01-01T00:00:00Z","pageSize":1e3}'),
    (2, '{"pageSize":2147483648}'),
    (3, '{"labelFilter":{"a":"b"},"page_size":5}'),
    (4, '{"firstEntryId":"18446744073709551615"}'),
    (5, '{"query":"q","logIds":["a","b"],"ignoreCase":true,"label_filter":{}}'),
    (6, '{"entryIds":["1","2"],"reason":"leak"}'),
    (7, '{"afterEntryId":"0","logId":"b9b0e8ca-ccd6-4d64-8ccd-4022d5bc474e"}'),
    (8, '{"entryId":"1","redacted":true,"revocation":{"actor":"a","time":"2026-01-01T00:00:00.000000001Z"}}'),
    (8, '{"logId":"a","log_id":"b"}'),
    (0, '[' * 300),
    (0, '{"entries":[{"jsonPayload":' + '{"a":' * 150 + '1' + '}' * 150 + '}]}'),
    (2, '{"startTime":"2026-02-29T00:00:00Z"}'),
    (2, '{"startTime":"2024-02-29T23:59:60.5Z"}'),
]
os.makedirs(OUT, exist_ok=True)
for sel, text in seeds:
    b = bytes([sel]) + text.encode()
    with open(os.path.join(OUT, hashlib.sha1(b).hexdigest()), "wb") as f:
        f.write(b)
print(len(seeds), "seeds in", OUT)
