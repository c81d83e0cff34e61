#!/usr/bin/python3
"""Drives Debian's headless Chromium through chromedriver against the
landing pages of a running `ferry serve` relay (tests/test-relay-browser.sh
starts the server and the uploads).

  relay-browser.py CASES.json RESULTS

CASES.json is a list of cases; each opens a page, checks what it shows,
presses its button and checks what the browser saved (or did not save).
Every check appends one line to RESULTS: "0|1 <TAB> name <TAB> diagnosis"
(0 = passed), which the shell script turns into TAP.

Case fields:
  name     what the TAP lines say
  url      the landing page (with #k=KEY for an encrypted link)
  title    the <h1> the page must show
  size     text the size line must contain (e.g. "(3145851 bytes)")
  button   CSS selector of the button to press
  save     the file name the browser must save (for "expect": "file"/"zip")
  compare  a file the saved one must equal byte for byte, or for a zip a
           folder its entries must equal
  expect   "file", "zip", "refused" (the page reports an integrity
           failure; no complete file named `save` appears) or "problem"
           (the page reports a problem without a button press)
  problem  text the page's alert must contain ("refused", "problem")
  via      "worker" or "memory": how an encrypted page must have decrypted
  no_sw    hide navigator.serviceWorker from the page (the fallback path)
"""
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

DEADLINE = time.monotonic() + float(os.environ.get("RELAY_BROWSER_SECONDS", "75"))


class Results:
    def __init__(self, path):
        self.out = open(path, "a", encoding="utf-8")

    def check(self, passed, name, diag=""):
        diag = " | ".join(str(diag).splitlines())
        self.out.write("%d\t%s\t%s\n" % (0 if passed else 1, name, diag))
        self.out.flush()
        return passed


def start_browser(profile, downloads):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--user-data-dir=" + profile, "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update",
                "--window-size=1000,800"]:
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    opts.add_experimental_option("prefs", {
        "download.default_directory": downloads,
        "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    service = Service("/usr/bin/chromedriver", log_path=os.path.join(profile, "chromedriver.log"))
    return webdriver.Chrome(service=service, options=opts)


def wait_for(what, seconds):
    end = min(time.monotonic() + seconds, DEADLINE)
    while True:
        value = what()
        if value or time.monotonic() > end:
            return value
        time.sleep(0.1)


def finished_download(folder, save):
    """The saved file once Chromium has finished it (no .crdownload left)."""
    names = os.listdir(folder)
    if save in names and not any(n.endswith(".crdownload") for n in names):
        return os.path.join(folder, save)
    return None


def page_problem(driver):
    box = driver.find_elements(By.ID, "problem")
    if box and box[0].is_displayed():
        return box[0].text
    return ""


def same_tree(zip_path, folder):
    """'' when every file under folder is in the zip with the same bytes
    (paths starting with the folder's own name), else what differs."""
    base = os.path.basename(folder.rstrip("/"))
    want = {}
    for root, _dirs, files in os.walk(folder):
        for f in files:
            full = os.path.join(root, f)
            want[os.path.join(base, os.path.relpath(full, folder))] = full
    with zipfile.ZipFile(zip_path) as z:
        bad = z.testzip()
        if bad:
            return "entry %s fails its CRC" % bad
        got = {i.filename: i for i in z.infolist() if not i.is_dir()}
        if set(got) != set(want):
            return "entries %s, wanted %s" % (sorted(got), sorted(want))
        for name, path in want.items():
            with open(path, "rb") as f:
                if z.read(name) != f.read():
                    return "%s differs" % name
    return ""


def run_case(driver, res, case, downloads):
    name = case["name"]
    folder = os.path.join(downloads, "case-%d" % run_case.n)
    run_case.n += 1
    os.makedirs(folder)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": folder})
    hide = None
    if case.get("no_sw"):
        hide = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
            "source": "delete Navigator.prototype.serviceWorker;"})["identifier"]
    try:
        driver.get(case["url"])
        title = driver.find_element(By.TAG_NAME, "h1").text
        size = driver.find_element(By.CLASS_NAME, "size").text
        res.check(title == case["title"] and case["size"] in size,
                  "%s: the page shows the name and size" % name,
                  "h1 %r, size line %r, wanted %r and %r" % (title, size, case["title"],
                                                             case["size"]))
        expect = case["expect"]
        if expect == "problem":
            text = wait_for(lambda: page_problem(driver), 10)
            res.check(case["problem"] in text, "%s: the page says what is wrong" % name,
                      "alert %r, wanted %r" % (text, case["problem"]))
            return
        button = wait_for(lambda: [b for b in driver.find_elements(By.CSS_SELECTOR,
                                                                   case["button"])
                                   if b.is_displayed() and b.is_enabled()], 10)
        if not res.check(bool(button), "%s: the page offers its button" % name,
                         "no visible, enabled %s; alert %r" % (case["button"],
                                                               page_problem(driver))):
            return
        button[0].click()
        if expect in ("file", "zip"):
            saved = wait_for(lambda: finished_download(folder, case["save"]), 40)
            if not res.check(saved is not None, "%s: the browser saves %s" % (name, case["save"]),
                             "download folder holds %s; page alert %r" %
                             (os.listdir(folder), page_problem(driver))):
                return
            if expect == "file":
                with open(saved, "rb") as a, open(case["compare"], "rb") as b:
                    same = a.read() == b.read()
                res.check(same, "%s: the saved file is byte-exact" % name,
                          "%s (%d bytes) differs from %s (%d bytes)" %
                          (saved, os.path.getsize(saved), case["compare"],
                           os.path.getsize(case["compare"])))
            else:
                diff = same_tree(saved, case["compare"])
                res.check(diff == "", "%s: the zip holds the folder, byte-exact" % name, diff)
        else:
            text = wait_for(lambda: page_problem(driver), 30)
            res.check(case["problem"] in text, "%s: the page reports the failure" % name,
                      "alert %r, wanted %r" % (text, case["problem"]))
            # Give the download manager time to finish whatever it would.
            time.sleep(1.5)
            names = os.listdir(folder)
            res.check(case["save"] not in names,
                      "%s: no complete file %s is saved" % (name, case["save"]),
                      "download folder holds %s" % names)
            status = driver.find_element(By.ID, "status").text
            res.check("Done" not in status, "%s: the page does not say it is done" % name,
                      "status %r" % status)
        if case.get("via"):
            via = driver.execute_script("return document.getElementById('relay').dataset.via")
            res.check(via == case["via"], "%s: went through the %s path" % (name, case["via"]),
                      "the page used %r" % via)
        if expect == "file" and case.get("via"):
            status = wait_for(lambda: "Done" in driver.find_element(By.ID, "status").text
                              and driver.find_element(By.ID, "status").text, 10)
            res.check(bool(status), "%s: the page says the file is done" % name,
                      "status %r" % driver.find_element(By.ID, "status").text)
    finally:
        if hide is not None:
            driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                                   {"identifier": hide})


run_case.n = 0


def main():
    cases = json.load(open(sys.argv[1], encoding="utf-8"))
    res = Results(sys.argv[2])
    work = tempfile.mkdtemp(prefix="ferry-browser-")
    profile = os.path.join(work, "profile")
    downloads = os.path.join(work, "downloads")
    os.makedirs(profile)
    os.makedirs(downloads)
    driver = None
    try:
        try:
            driver = start_browser(profile, downloads)
        except WebDriverException as e:
            res.check(False, "headless Chromium starts through chromedriver",
                      "%s (scripts/install-deps.sh installs chromium and chromium-driver)" %
                      e.msg)
            return
        res.check(True, "headless Chromium %s starts through chromedriver" %
                  driver.capabilities.get("browserVersion", "?"))
        for case in cases:
            if time.monotonic() > DEADLINE:
                res.check(False, "%s: run" % case["name"], "the browser test ran out of time")
                continue
            try:
                run_case(driver, res, case, downloads)
            except WebDriverException as e:
                res.check(False, "%s: the browser runs the case" % case["name"], e.msg)
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
