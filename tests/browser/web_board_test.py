#!/usr/bin/env python3
"""The web board in real headless Chromium (issue 15's "Done when").

Starts its own farm from the build: redis-server on a free loopback port, a
reelfarm-coordinator and one reelfarm-worker; makes a 1 s 320x180 source with
ffmpeg; then, in the browser:

 1. without a token: a refused spec shows its errors with file:line; a good one
    submitted by pasting it on the submit page; the board shows the delivery
    and its finish; the delivery page shows every deliverable delivered with the
    sha256 of manifest.json on disk; a download link sends those bytes; the
    workers page lists the worker.
 2. the coordinator restarted with --api-token-file (same Redis): the API
    answers 401 and the page redirects to /login; a wrong token is refused; the
    right one shows the board and the delivery again; a POST with the session
    cookie but without the X-Reelfarm-Request header is refused (403), from the
    page itself and from outside with a foreign Origin; logging out ends it.

Exits 77 (CTest SKIP_RETURN_CODE) when Selenium, Chromium, chromedriver,
redis-server or ffmpeg is missing. Every wait is a WebDriverWait (or a polled
condition) bounded in time; no fixed sleeps.
"""

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

SKIP = 77

SPEC_BAD = """version: 1
name: board-test
source: media/src.mov
output_dir: out/board
deliverables:
  - name: web
    preset: web-h264
    heigth: 120
"""

SPEC = """version: 1
name: board-test
source: media/src.mov
output_dir: out/board
deliverables:
  - name: web
    preset: web-h264
    height: 120
  - name: poster
    preset: thumbnail-jpg
  - name: sound
    preset: audio-wav
"""

# Submitted while no worker is connected: it stays queued, for the buttons.
SPEC_QUEUED = """version: 1
name: board-queued
source: media/src.mov
output_dir: out/queued
deliverables:
  - name: poster
    preset: thumbnail-jpg
  - name: sound
    preset: audio-wav
"""

TOKEN = "board-test-token-0123456789"


def skip(why):
    print("SKIP: " + why, flush=True)
    sys.exit(SKIP)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_until(what, cond, timeout):
    """Polls cond() (a short back-off, no fixed sleep for time to pass) until it is true."""
    end = time.monotonic() + timeout
    delay = 0.02
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class Farm:
    def __init__(self, bin_dir, work):
        self.bin_dir = bin_dir
        self.work = work
        self.procs = {}
        (self.redis_port, self.zmq_port, self.http_port) = free_ports(3)

    def spawn(self, name, argv):
        log = open(os.path.join(self.work, name + ".log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p is None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)

    def log_tail(self, name):
        try:
            with open(os.path.join(self.work, name + ".log"), "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def request(self, method, path, headers=None, body=None, port=None):
        c = http.client.HTTPConnection("127.0.0.1", port or self.http_port, timeout=10)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def start_redis(self):
        d = os.path.join(self.work, "redis")
        os.makedirs(d)
        self.spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port",
                             str(self.redis_port), "--dir", d, "--appendonly", "yes",
                             "--appendfsync", "always", "--save", "", "--daemonize", "no"])

        def pong():
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), 0.5) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False
        wait_until("redis", pong, 15)

    def start_coordinator(self, extra=(), name="coordinator", ports=None, role="active"):
        zmq_port, http_port = ports or (self.zmq_port, self.http_port)
        self.spawn(name, [
            os.path.join(self.bin_dir, "reelfarm-coordinator"),
            "--redis", "redis://127.0.0.1:%d" % self.redis_port,
            "--bind", "tcp://127.0.0.1:%d" % zmq_port,
            "--http", "127.0.0.1:%d" % http_port,
            "--metrics", "",
            "--heartbeat-ms", "250", "--liveness", "3", "--piece-cost", "0",
            "--allowed-root", self.work] + list(extra))

        def in_role():
            try:
                _, _, body = self.request("GET", "/healthz", port=http_port)
                return json.loads(body).get("role") == role
            except (OSError, ValueError):
                if self.procs[name].poll() is not None:
                    raise AssertionError("the coordinator exited: " + self.log_tail(name))
                return False
        wait_until("the coordinator's /healthz saying " + role, in_role, 20)

    def start_worker(self):
        self.spawn("worker", [
            os.path.join(self.bin_dir, "reelfarm-worker"),
            "--coordinator", "tcp://127.0.0.1:%d" % self.zmq_port,
            "--name", "board-w1", "--slots", "2", "--metrics", "",
            "--drain-timeout", "0", "--allowed-root", self.work])


def make_source(work):
    media = os.path.join(work, "media")
    os.makedirs(media)
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                    "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
                    "-map", "0:v:0", "-map", "1:a:0", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-f", "mov",
                    os.path.join(media, "src.mov")], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--screenshots", help="save a PNG of each page in this folder")
    args = ap.parse_args()

    try:
        from selenium import webdriver
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        skip("python3-selenium is not installed for " + sys.executable)
    for tool, path in (("chromium", args.chromium), ("chromedriver", args.chromedriver)):
        if not path or not os.access(path, os.X_OK):
            skip("%s not found (%r): install Debian's chromium and chromium-driver" % (tool, path))
    for tool in ("redis-server", "ffmpeg"):
        if shutil.which(tool) is None:
            skip(tool + " not found")
    for b in ("reelfarm-coordinator", "reelfarm-worker"):
        if not os.access(os.path.join(args.bin_dir, b), os.X_OK):
            raise SystemExit("missing " + os.path.join(args.bin_dir, b) + ": build it first")

    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="rf-web-board-")
    farm = Farm(args.bin_dir, work)
    driver = None
    ok = False
    try:
        make_source(work)
        farm.start_redis()
        farm.start_coordinator()
        farm.start_worker()

        opts = webdriver.ChromeOptions()
        opts.binary_location = args.chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--no-first-run", "--disable-extensions", "--window-size=1400,1000"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service(executable_path=args.chromedriver),
                                  options=opts)
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(20)
        base = "http://127.0.0.1:%d" % farm.http_port

        def wait(timeout=30):
            # A row read while the page replaces it: read again.
            return WebDriverWait(driver, timeout, poll_frequency=0.05,
                                 ignored_exceptions=[StaleElementReferenceException])

        def snap(name):
            if args.screenshots:
                os.makedirs(args.screenshots, exist_ok=True)
                driver.save_screenshot(os.path.join(args.screenshots, name + ".png"))

        def text_of(css):
            els = driver.find_elements(By.CSS_SELECTOR, css)
            return els[0].text if els else None

        # ---- 1. open farm: submit, watch, inspect ------------------------
        driver.get(base + "/#/submit")
        wait().until(lambda d: d.find_element(By.ID, "view-submit").is_displayed())
        assert driver.find_element(By.ID, "logout").is_displayed() is False
        base_dir = driver.find_element(By.ID, "base-dir")
        base_dir.clear()
        base_dir.send_keys(work)
        spec_box = driver.find_element(By.ID, "spec-text")
        # A file loaded with the file input (read by FileReader) names the errors.
        bad_file = os.path.join(work, "bad.yaml")
        with open(bad_file, "w") as f:
            f.write(SPEC_BAD)
        driver.find_element(By.ID, "spec-upload").send_keys(bad_file)
        wait().until(lambda d: spec_box.get_attribute("value") == SPEC_BAD)
        assert driver.find_element(By.ID, "spec-file").get_attribute("value") == "bad.yaml"
        driver.find_element(By.ID, "submit-button").click()
        wait().until(lambda d: d.find_element(By.ID, "submit-errors").is_displayed())
        errors = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#submit-errors li")]
        assert any(e.startswith("bad.yaml:8: ") and "heigth" in e for e in errors), errors
        assert driver.switch_to.active_element.get_attribute("id") == "submit-errors"
        print("refused spec shown as:", errors, flush=True)
        snap("submit-refused")

        # Then one pasted (typed) into the box.
        spec_box.clear()
        spec_box.send_keys(SPEC)
        name_box = driver.find_element(By.ID, "spec-file")
        name_box.clear()
        name_box.send_keys("spec.yaml")
        driver.find_element(By.ID, "submit-button").click()
        wait().until(lambda d: d.current_url.split("#", 1)[-1].startswith("/d/board-test-"))
        delivery_id = urllib.parse.unquote(driver.current_url.split("#/d/", 1)[1])
        print("submitted", delivery_id, "after %.1f s" % (time.monotonic() - started), flush=True)
        assert driver.execute_script(
            "return window.localStorage.getItem('reelfarm.base_dir')") == work

        # The board: the delivery's row, then its finish with a full bar.
        driver.get(base + "/#/")
        row_css = 'tr[data-key="%s"]' % delivery_id
        wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, row_css))
        first_state = text_of(row_css + " .state")
        wait(60).until(lambda d: text_of(row_css + " .state") == "delivered")
        bar = driver.find_element(By.CSS_SELECTOR, row_css + " progress")
        assert float(bar.get_attribute("value")) == 1.0
        assert text_of(row_css + " .pct") == "100 %"
        assert driver.find_element(By.CSS_SELECTOR, row_css + " .finished").text != ""
        snap("board")
        print("board: first saw", first_state, "then delivered after %.1f s"
              % (time.monotonic() - started), flush=True)

        # The delivery page, reached by its link.
        driver.find_element(By.CSS_SELECTOR, row_css + " td.name a").click()
        wait().until(lambda d: d.find_element(By.ID, "view-delivery").is_displayed())
        manifest_path = os.path.join(work, "out", "board", "manifest.json")
        with open(manifest_path) as f:
            manifest = json.load(f)
        expected = {d["name"]: d["sha256"] for d in manifest["deliverables"]}
        assert sorted(expected) == ["poster", "sound", "web"], expected
        assert all(d["status"] == "delivered" for d in manifest["deliverables"])

        def items_shown(d):
            rows = d.find_elements(By.CSS_SELECTOR, "#items tbody tr")
            got = {}
            for r in rows:
                got[r.get_attribute("data-key")] = (
                    r.find_element(By.CSS_SELECTOR, ".state").text,
                    r.find_element(By.CSS_SELECTOR, "td.sha256").text)
            return got if len(got) == len(expected) else None
        shown = wait().until(items_shown)
        for name, sha in expected.items():
            assert shown[name] == ("delivered", sha), (name, shown[name], sha)
        print("delivery page: every deliverable delivered with the manifest's sha256", flush=True)
        snap("delivery")

        # A download link sends the delivered bytes.
        link = driver.find_element(By.CSS_SELECTOR, 'tr[data-key="web"] a.download')
        href = link.get_attribute("href")
        assert href.endswith("/api/v1/deliveries/%s/files/web" % delivery_id), href
        status, headers, body = farm.request("GET", urllib.parse.urlparse(href).path)
        assert status == 200, status
        assert hashlib.sha256(body).hexdigest() == expected["web"]
        assert "attachment" in headers.get("Content-Disposition", "")

        # The workers page.
        driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/workers"]').click()
        wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-key="board-w1"]'))
        wstate = text_of('tr[data-key="board-w1"] .state')
        assert wstate in ("ready", "busy"), wstate
        snap("workers")
        farm.stop("worker")  # what is submitted from now on stays queued

        # ---- 2. with a token ---------------------------------------------
        farm.stop("coordinator")
        token_file = os.path.join(work, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        farm.start_coordinator(["--api-token-file", token_file])

        status, _, _ = farm.request("GET", "/api/v1/deliveries")
        assert status == 401, status
        status, headers, _ = farm.request("GET", "/")
        assert status == 303 and headers.get("Location") == "/login", (status, headers)

        driver.delete_all_cookies()
        driver.get(base + "/#/d/" + delivery_id)
        wait().until(lambda d: urllib.parse.urlparse(d.current_url).path == "/login")

        def log_in(token):
            box = wait().until(lambda d: d.find_element(By.ID, "token"))
            box.clear()
            box.send_keys(token)
            driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()

        log_in("not-the-token")
        wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, "#login-form .error"))
        assert urllib.parse.urlparse(driver.current_url).path == "/login"
        assert driver.get_cookie("reelfarm_session") is None
        snap("login-refused")

        log_in(TOKEN)
        wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, row_css + " .state"))
        cookie = driver.get_cookie("reelfarm_session")
        assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
        assert cookie["value"] != TOKEN
        wait().until(lambda d: text_of(row_css + " .state") == "delivered")
        assert driver.find_element(By.ID, "logout").is_displayed()
        driver.find_element(By.CSS_SELECTOR, row_css + " td.name a").click()
        shown = wait().until(items_shown)
        for name, sha in expected.items():
            assert shown[name] == ("delivered", sha), (name, shown[name], sha)
        print("with a token: login refused, then accepted; the delivery shown again", flush=True)

        # The buttons (cookie-authenticated POSTs from the page) on a queued delivery.
        status, _, body = farm.request(
            "POST", "/api/v1/deliveries",
            {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
            json.dumps({"spec": SPEC_QUEUED, "spec_file": "queued.yaml",
                        "base_dir": work}).encode())
        assert status == 201, (status, body)
        queued_id = json.loads(body)["id"]
        driver.get(base + "/#/d/" + queued_id)
        poster = 'tr[data-key="poster"]'
        waiting = ("queued", "waiting")
        wait().until(lambda d: text_of(poster + " .state") in waiting)
        prio = driver.find_element(By.ID, "priority-input")
        prio.clear()
        prio.send_keys("70")
        driver.find_element(By.CSS_SELECTOR, "#priority-form button").click()
        wait().until(lambda d: text_of("#delivery-priority") == "70")

        def confirm_dialog():
            wait(10).until(EC.alert_is_present()).accept()
        driver.find_element(By.CSS_SELECTOR, poster + " .item-cancel").click()
        confirm_dialog()
        wait().until(lambda d: text_of(poster + " .state") == "cancelled")
        assert text_of('tr[data-key="sound"] .state') in waiting
        retry = driver.find_element(By.CSS_SELECTOR, poster + " .item-retry")
        assert retry.is_displayed()
        retry.click()
        wait().until(lambda d: text_of(poster + " .state") in waiting)
        driver.find_element(By.ID, "delivery-cancel").click()
        confirm_dialog()
        wait().until(lambda d: text_of("#delivery-state") == "cancelled")
        assert all(r.find_element(By.CSS_SELECTOR, ".state").text == "cancelled"
                   for r in driver.find_elements(By.CSS_SELECTOR, "#items tbody tr"))
        print("buttons: priority, cancel and retry one, cancel all", flush=True)

        # CSRF: the cookie alone does not make a POST.
        page_post = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/api/v1/deliveries/' + arguments[0] + '/retry',
                  {method: 'POST', credentials: 'same-origin'})
              .then(r => done(r.status), e => done(String(e)));""", delivery_id)
        assert page_post == 403, page_post
        with_header = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/api/v1/deliveries/' + arguments[0] + '/retry',
                  {method: 'POST', credentials: 'same-origin',
                   headers: {'X-Reelfarm-Request': '1'}})
              .then(r => done(r.status), e => done(String(e)));""", delivery_id)
        assert with_header == 409, with_header  # authorised; nothing failed to retry
        session = {"Cookie": "reelfarm_session=" + cookie["value"]}
        status, _, _ = farm.request("GET", "/api/v1/deliveries/" + delivery_id, session)
        assert status == 200, status
        status, _, _ = farm.request(
            "POST", "/api/v1/deliveries/%s/priority" % delivery_id,
            dict(session, **{"Origin": "http://evil.example",
                             "Content-Type": "application/json"}), b'{"priority": 10}')
        assert status == 403, status
        status, _, _ = farm.request(
            "POST", "/api/v1/deliveries/%s/retry" % delivery_id,
            {"Authorization": "Bearer " + TOKEN})
        assert status == 409, status
        print("CSRF: cookie POSTs without the header refused", flush=True)

        driver.find_element(By.CSS_SELECTOR, "#logout button").click()
        wait().until(lambda d: urllib.parse.urlparse(d.current_url).path == "/login")
        assert driver.get_cookie("reelfarm_session") is None

        # A standby coordinator's board says so (its API answers 503).
        standby_ports = free_ports(2)
        farm.start_coordinator(["--api-token-file", token_file], name="standby",
                               ports=standby_ports, role="standby")
        driver.get("http://127.0.0.1:%d/login" % standby_ports[1])
        log_in(TOKEN)
        wait().until(lambda d: d.find_element(By.ID, "banner").is_displayed())
        assert driver.find_element(By.ID, "banner").text.startswith("Standby"), \
            driver.find_element(By.ID, "banner").text
        snap("standby")
        print("standby: the board says so", flush=True)

        # Nothing the CSP refused, no script error, all along.
        problems = [e["message"] for e in driver.get_log("browser")
                    if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
        assert not problems, problems
        ok = True
        print("PASS in %.1f s" % (time.monotonic() - started), flush=True)
    finally:
        if not ok:
            for name in ("coordinator", "worker"):
                print("--- %s log ---\n%s" % (name, farm.log_tail(name)), file=sys.stderr)
            if driver is not None:
                try:
                    print("--- page ---\n" + driver.page_source[-3000:], file=sys.stderr)
                    for entry in driver.get_log("browser"):
                        print("browser:", entry, file=sys.stderr)
                except Exception:  # noqa: BLE001 - diagnostics only
                    pass
        if driver is not None:
            driver.quit()
        farm.stop_all()
        if args.keep:
            print("work folder kept:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
