"""The web viewer (docs/viewer.md) in headless Chromium, driven by Selenium and ChromeDriver
from Debian: a reader's browser against a real annalsd serving its HTTP port. Entries are
written over gRPC (a client nobody here wrote), read through the page.

Screenshots are kept in $ANNALS_ARTIFACTS (default build/test-artifacts/browser)."""
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request

import pytest

from annals.v1 import annals_pb2 as pb
from conftest import ROOT, Client, Server, _keep_log

sys.path.insert(0, os.path.join(ROOT, "tests", "api"))
from helpers import create_log, entry, uid, write  # noqa: E402

pytestmark = pytest.mark.timeout(900)

ART = os.environ.get("ANNALS_ARTIFACTS", os.path.join(ROOT, "build", "test-artifacts", "browser"))
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def web_server():
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        s = Server(d, http=True).start()
        try:
            yield s
            assert s.proc.poll() is None, "annalsd died during the tests"
        finally:
            s.stop()
            _keep_log(s)


@pytest.fixture(scope="module")
def key(web_server):
    return web_server.tenant("viewer-a")


@pytest.fixture(scope="module")
def client(web_server, key):
    c = Client(web_server, key)
    yield c
    c.close()


@pytest.fixture(scope="module")
def downloads():
    d = tempfile.mkdtemp(prefix="annals-dl-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(downloads):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="annals-chromium-")
    o = Options()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--window-size=1280,900",
              f"--user-data-dir={profile}"):
        o.add_argument(a)
    o.add_experimental_option("prefs", {"download.default_directory": downloads,
                                        "download.prompt_for_download": False})
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    drv.set_page_load_timeout(WAIT)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def base(s):
    return f"http://{s.http_addr}"


def shot(drv, name):
    os.makedirs(ART, exist_ok=True)
    drv.save_screenshot(os.path.join(ART, name + ".png"))


def wait_for(drv, fn, what, timeout=WAIT):
    try:
        return WebDriverWait(drv, timeout, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,)).until(
                                 lambda d: fn(d))
    except Exception:
        shot(drv, "failed-" + what.replace(" ", "-"))
        raise AssertionError(f"the page never showed {what}")


def signed_in(drv, s, key, path):
    """Opens path with the key already in this tab's sessionStorage."""
    drv.get(base(s) + "/")
    drv.execute_script("sessionStorage.setItem('annals.key', arguments[0]);", key)
    drv.get(base(s) + path)


def row(drv, entry_id):
    found = drv.find_elements(By.ID, f"L{entry_id}")
    return found[0] if found else None


def row_state(drv, entry_id):
    """(text, classes) of an entry's row read at one instant, or (None, None): the page
    re-renders its rows as blocks arrive, so element handles go stale."""
    return tuple(drv.execute_script(
        "const r = document.getElementById(arguments[0]);"
        "return r ? [r.innerText, r.className] : [null, null];", f"L{entry_id}"))


def severe_console(drv):
    """Script errors and CSP violations: none is expected from our own page (HTTP errors
    the test provokes, such as a refused key's 401, are the network's, not counted)."""
    return [e for e in drv.get_log("browser")
            if e.get("level") == "SEVERE" and e.get("source") != "network"]


def test_pages_carry_the_security_headers(web_server):
    for path in ("/", "/logs/x", "/search", "/assets/app.js", "/assets/ansi_up.js"):
        with urllib.request.urlopen(base(web_server) + path, timeout=WAIT) as r:
            h = r.headers
            csp = h["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
            assert h["X-Content-Type-Options"] == "nosniff", path
            assert h.get("Access-Control-Allow-Origin") is None, path
            assert r.read(), path
    # The page has no inline script for the policy to allow.
    with urllib.request.urlopen(base(web_server) + "/", timeout=WAIT) as r:
        page = r.read().decode()
    assert "<script>" not in page and 'src="/assets/app.js"' in page


def test_sign_in_with_a_key_then_the_logs_newest_first(web_server, key, client, browser):
    older = create_log(client, {"job": "etl", "n": "1"})
    newer = create_log(client, {"job": "etl", "n": "2"})
    browser.get(base(web_server) + "/")
    browser.execute_script("sessionStorage.clear();")
    browser.get(base(web_server) + "/")
    box = wait_for(browser, lambda d: d.find_elements(By.ID, "key"), "the sign-in form")[0]
    box.send_keys("not-a-key")
    browser.find_element(By.ID, "signin-go").click()
    wait_for(browser, lambda d: "refused" in d.find_element(By.ID, "main").text,
             "the refusal of a bad key")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "signin-go").click()
    links = wait_for(browser, lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "#logs a")]
                     if newer in [a.text for a in d.find_elements(By.CSS_SELECTOR, "#logs a")] else None,
                     "the tenant's logs")
    assert links.index(newer) < links.index(older), "newest first"
    # The key stays in this tab's sessionStorage, nowhere else.
    assert browser.execute_script("return sessionStorage.getItem('annals.key')") == key
    assert browser.execute_script("return localStorage.length") == 0
    assert "; " not in browser.execute_script("return document.cookie") and \
        key not in browser.execute_script("return document.cookie")
    # A label filter narrows the list.
    f = browser.find_element(By.ID, "label-filter")
    f.send_keys("n=1\n")
    wait_for(browser, lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "#logs a")] == [older],
             "the filtered list")
    shot(browser, "logs")
    assert not severe_console(browser)


def test_permalink_opens_a_100000_entry_log_at_the_entry(web_server, key, client, browser):
    log_id = create_log(client, {"size": "100k"})
    for b in range(100):
        write(client, log_id, [entry(f"step {b} line {b * 1000 + i + 1} " + "x" * 40,
                                     insert_id=f"{b}-{i}", severity=pb.LogEntry.INFO)
                               for i in range(1000)])
    signed_in(browser, web_server, key, f"/logs/{log_id}#L54321")
    r = wait_for(browser, lambda d: row(d, 54321) if row(d, 54321) is not None and
                 "line 54321 " in row(d, 54321).text else None, "entry 54321")
    assert "hl" in r.get_attribute("class").split()
    # In view: inside the scroller's visible box.
    inside = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(), s = document.getElementById('scroller')"
        ".getBoundingClientRect(); return r.top >= s.top && r.bottom <= s.bottom;", r)
    assert inside, "entry 54321 is not in view"
    assert "100000 entries" in browser.find_element(By.ID, "count").text
    shot(browser, "permalink-54321")
    # A range highlights every entry in it, and only those.
    browser.get(base(web_server) + f"/logs/{log_id}#L100-L120")
    wait_for(browser, lambda d: row(d, 110) is not None and "line 110 " in row(d, 110).text,
             "entries 100 to 120")
    hl = [int(e.get_attribute("data-id")) for e in browser.find_elements(By.CSS_SELECTOR, ".row.hl")]
    assert hl == list(range(100, 121))
    # The end of the log is reachable by scrolling (the scrollbar maps to entry ids).
    browser.execute_script("const s = document.getElementById('scroller'); s.scrollTop = s.scrollHeight;")
    wait_for(browser, lambda d: row(d, 100000) is not None and "line 100000 " in row(d, 100000).text,
             "the last entry after scrolling to the end")
    assert not severe_console(browser)


HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 1">',
    '<a href="javascript:window.__pwned=1">click me</a> javascript:window.__pwned=1',
    "\x1b]8;;javascript:window.__pwned=1\x1b\\osc link\x1b]8;;\x1b\\ after",
    "\x1b[31mred\x1b[0m and \x1b[1mbold\x1b[0m and \x1b[38;2;10;20;30mtrue\x1b[0m",
    "abc\u202eevil\u202cdef \u2066iso\u2069",
    "nul\x00byte bell\x07 del\x7f",
    "<style>body{display:none}</style>&amp;&lt;",
]


def test_hostile_payloads_render_as_text_and_run_nothing(web_server, key, client, browser):
    log_id = create_log(client, {"hostile": "yes"})
    write(client, log_id, [entry(t, insert_id=uid()) for t in HOSTILE])
    write(client, log_id, [pb.LogEntry(insert_id=uid(), json_payload={"html": "<script>window.__pwned=1</script>",
                                                                     "n": 1})])
    signed_in(browser, web_server, key, f"/logs/{log_id}")
    n = len(HOSTILE) + 1
    wait_for(browser, lambda d: row(d, n) is not None and "html" in row(d, n).text, "every entry")
    rows = browser.find_element(By.ID, "rows")
    assert browser.execute_script("return window.__pwned") is None
    # Nothing from a payload became an element other than our styled spans.
    tags = set(browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('.msg *')).map(e => e.tagName)", rows))
    assert tags <= {"SPAN"}, tags
    text = {i + 1: row(browser, i + 1).find_element(By.CLASS_NAME, "msg").text for i in range(n)}
    assert text[1] == HOSTILE[0]
    assert text[2] == HOSTILE[1]
    assert "javascript:window.__pwned=1" in text[3]
    assert "osc link" in text[4] and "after" in text[4]
    assert text[5] == "red and bold and true"
    red = row(browser, 5).find_elements(By.CSS_SELECTOR, ".ansi-red-fg")
    bold = row(browser, 5).find_elements(By.CSS_SELECTOR, ".ansi-bold")
    assert red and red[0].text == "red" and bold and bold[0].text == "bold"
    assert row(browser, 5).find_elements(By.TAG_NAME, "span")[-1].value_of_css_property("color") in \
        ("rgb(10, 20, 30)", "rgba(10, 20, 30, 1)")
    # Bidi controls and other control characters are shown, not obeyed.
    assert text[6] == "abc\u27e8U+202E\u27e9evil\u27e8U+202C\u27e9def \u27e8U+2066\u27e9iso\u27e8U+2069\u27e9"
    assert text[7] == "nul\u2400byte bell\u2407 del\u2421"
    assert text[8] == HOSTILE[7]
    assert browser.find_element(By.TAG_NAME, "body").is_displayed()
    # The JSON payload, pretty-printed in the detail view, is text too.
    row(browser, n).click()
    pre = wait_for(browser, lambda d: d.find_elements(By.ID, "detail-json"), "the JSON detail")[0]
    assert json.loads(pre.text) == {"html": "<script>window.__pwned=1</script>", "n": 1}
    assert "\n" in pre.text
    time.sleep(0.5)
    assert browser.execute_script("return window.__pwned") is None
    shot(browser, "hostile")


def test_redacted_entries_say_who_when_and_why(web_server, key, client, browser):
    log_id = create_log(client)
    write(client, log_id, [entry("keep", insert_id=uid()), entry("secret=hunter2", insert_id=uid())])
    client.call(client.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
        log_id=log_id, entry_ids=["2"], reason="leaked <b>password</b>"))
    signed_in(browser, web_server, key, f"/logs/{log_id}")
    r = wait_for(browser, lambda d: row(d, 2) if row(d, 2) is not None and "redacted" in row(d, 2).text
                 else None, "the redacted entry")
    t = r.text
    assert "hunter2" not in t and "leaked <b>password</b>" in t and "tenant:viewer-a" in t
    assert not r.find_elements(By.TAG_NAME, "b")


def test_live_follow_shows_new_entries(web_server, key, client, browser):
    log_id = create_log(client)
    write(client, log_id, [entry(f"before {i}", insert_id=uid()) for i in range(5)])
    signed_in(browser, web_server, key, f"/logs/{log_id}")
    wait_for(browser, lambda d: row(d, 5) is not None and "before 4" in row(d, 5).text, "the first entries")
    browser.find_element(By.ID, "follow").click()
    time.sleep(0.5)
    for k in range(3):
        write(client, log_id, [entry(f"live {k}", insert_id=uid(), severity=pb.LogEntry.ERROR)])
        wait_for(browser, lambda d: row(d, 6 + k) is not None and f"live {k}" in row(d, 6 + k).text,
                 f"followed entry {6 + k}")
    assert "sev-ERROR" in row(browser, 8).find_element(By.CLASS_NAME, "sev").get_attribute("class")
    assert "8 entries" in browser.find_element(By.ID, "count").text
    shot(browser, "follow")


def test_time_zone_toggle_and_search_within_the_log(web_server, key, client, browser):
    log_id = create_log(client)
    write(client, log_id, [entry(f"row {i} {'needle' if i == 37 else 'hay'}", insert_id=uid())
                           for i in range(1, 61)])
    signed_in(browser, web_server, key, f"/logs/{log_id}")
    wait_for(browser, lambda d: row(d, 1) is not None and "row 1 " in row(d, 1).text, "the log")
    ts = lambda: row(browser, 1).find_element(By.CLASS_NAME, "ts").text  # noqa: E731
    first = ts()
    browser.find_element(By.ID, "tz").click()
    wait_for(browser, lambda d: ts() != first, "the other time zone")
    assert first.endswith("Z") != ts().endswith("Z")
    browser.find_element(By.ID, "tz").click()
    q = browser.find_element(By.ID, "find")
    q.send_keys("needle\n")
    hit = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#find-results .row"), "the match")
    assert len(hit) == 1 and "row 37 needle" in hit[0].text
    hit[0].click()
    wait_for(browser, lambda d: row(d, 37) is not None and "hl" in row(d, 37).get_attribute("class"),
             "the match highlighted")
    assert browser.current_url.endswith("#L37")


def test_download_as_text_and_ndjson(web_server, key, client, browser, downloads):
    log_id = create_log(client)
    write(client, log_id, [entry(f"dl {i}", insert_id=uid()) for i in range(1, 1501)])
    signed_in(browser, web_server, key, f"/logs/{log_id}")
    wait_for(browser, lambda d: row(d, 1) is not None and "dl 1" in row(d, 1).text, "the log")
    browser.find_element(By.ID, "dl-ndjson").click()
    path = os.path.join(downloads, log_id + ".ndjson")
    wait_for(browser, lambda d: os.path.exists(path) and not os.path.exists(path + ".crdownload")
             and os.path.getsize(path) > 0, "the NDJSON download")
    lines = [json.loads(x) for x in open(path, encoding="utf-8").read().splitlines()]
    assert [x["entryId"] for x in lines] == [str(i) for i in range(1, 1501)]
    assert lines[1499]["textPayload"] == "dl 1500"
    browser.find_element(By.ID, "dl-text").click()
    tpath = os.path.join(downloads, log_id + ".txt")
    wait_for(browser, lambda d: os.path.exists(tpath) and not os.path.exists(tpath + ".crdownload")
             and os.path.getsize(tpath) > 0, "the text download")
    tl = open(tpath, encoding="utf-8").read().splitlines()
    assert len(tl) == 1500 and tl[0].startswith("1\t") and tl[0].endswith("\tdl 1")


def test_another_tenants_log_looks_missing(web_server, client, browser):
    other = web_server.tenant("viewer-b")
    theirs = create_log(Client(web_server, other))
    signed_in(browser, web_server, client.key, f"/logs/{theirs}")
    e1 = wait_for(browser, lambda d: d.find_element(By.ID, "log-error").text or None, "the error")
    signed_in(browser, web_server, client.key, "/logs/00000000-0000-4000-8000-000000000000")
    e2 = wait_for(browser, lambda d: d.find_element(By.ID, "log-error").text or None, "the error")
    assert e1.replace(theirs, "ID") == e2.replace("00000000-0000-4000-8000-000000000000", "ID")
    assert "not found" in e1.lower()


def test_a_share_link_reads_its_range_and_fails_once_expired(web_server, key, client, browser):
    import subprocess
    from conftest import BIN
    log_id = create_log(client)
    write(client, log_id, [entry(f"shared line {i}", insert_id=uid()) for i in range(1, 41)])
    env = dict(os.environ, ANNALS_ADDR=web_server.addr, ANNALS_TOKEN=key,
               ANNALS_WEB_URL=base(web_server))

    def annals_share(*args):
        p = subprocess.run([os.path.join(BIN, "annals"), "share", log_id, *args], env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert "expires" in p.stderr
        return p.stdout.strip()

    url = annals_share("--from", "10", "--to", "20", "--ttl", "1h")
    assert url.startswith(base(web_server) + f"/logs/{log_id}?share=annals-share.") and url.endswith("#L10")
    browser.get(base(web_server) + "/")
    browser.execute_script("sessionStorage.clear();")
    browser.get(url)
    wait_for(browser, lambda d: "shared line 20" in (row_state(d, 20)[0] or ""), "the shared range")
    text, cls = row_state(browser, 10)
    assert "shared line 10" in text and "hl" in cls.split()
    wait_for(browser, lambda d: "not shared" in (row_state(d, 9)[0] or ""),
             "an entry outside the range shown as not shared")
    assert "shared line 9" not in browser.find_element(By.ID, "rows").text
    # The token is the tab's credential now, and it is read-only: the list of logs is not
    # there, nor any other log.
    assert browser.execute_script("return sessionStorage.getItem('annals.key')").startswith("annals-share.")
    assert "share=" not in browser.current_url
    shot(browser, "share-link")
    browser.get(base(web_server) + "/")
    wait_for(browser, lambda d: "one log only" in d.find_element(By.ID, "main").text, "the share notice")
    # An expired link is refused.
    short = annals_share("--ttl", "1s")
    time.sleep(1.5)
    browser.execute_script("sessionStorage.clear();")
    browser.get(short)
    wait_for(browser, lambda d: "expired or is not valid" in d.find_element(By.ID, "main").text,
             "the expired link refused")
    shot(browser, "share-link-expired")
    browser.execute_script("sessionStorage.clear();")
