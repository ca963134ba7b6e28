"""Fixtures for the browser tests: Debian's headless Chromium driven by selenium, screenshots of
each step, and the two real stacks the tests run against (started by tests/browser/run.sh):
  - the WordPress environment of wp-env.sh (env vars from build/wp-env/env.sh), and
  - the stack `make run` starts (scripts/run-local.sh), which serves the demo page.
Nothing here fakes a part: if a stack is missing the fixture fails with the reason, never skips."""

import os
import pathlib
import re
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts"
FIXTURE_IMAGES = ROOT / "tests" / "fixtures" / "images"


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the browser tests through tests/browser/run.sh")
    return value


class WpEnv:
    """The WordPress site and the vlm API next to it (see wp-env.sh)."""

    def __init__(self):
        self.url = _env("WP_URL")
        self.vlm_url = _env("VLM_URL")
        self.admin_user = _env("WP_ADMIN_USER")
        self.admin_password = _env("WP_ADMIN_PASSWORD")
        self.app_password = _env("WP_APP_PASSWORD")
        self.path = pathlib.Path(_env("WP_PATH"))
        self.debug_log = pathlib.Path(_env("WP_DEBUG_LOG"))
        self.vlm_access_log = pathlib.Path(_env("NGINX_ACCESS_LOG"))
        self.api_key = pathlib.Path(_env("VLM_API_KEY_FILE")).read_text().strip()


class VlmStack:
    """The `make run` stack: base URL and its development API key."""

    def __init__(self):
        self.url = _env("VLM_DEMO_URL")
        self.api_key = pathlib.Path(_env("VLM_DEMO_KEY_FILE")).read_text().strip()
        self.access_log = pathlib.Path(os.environ.get("VLM_DEMO_ACCESS_LOG", ""))


@pytest.fixture(scope="session")
def wp_env():
    env = WpEnv()
    with urllib.request.urlopen(env.url + "/wp-login.php", timeout=30) as r:
        assert r.status == 200, "WordPress does not answer"
    return env


@pytest.fixture(scope="session")
def vlm_stack():
    stack = VlmStack()
    with urllib.request.urlopen(stack.url + "/readyz", timeout=30) as r:
        assert r.status == 200, "the make-run stack is not ready"
    return stack


def _new_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--lang=en-US", "--no-first-run",
                "--disable-search-engine-choice-screen"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps selenium-manager from reaching for the network.
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


@pytest.fixture
def browser(request):
    """A fresh browser per test (no cookies or storage leak between tests). On failure the last
    screen is saved as <test>-FAILED.png and the browser console is printed. Any uncaught
    JavaScript exception on any page the test visited fails the test."""
    driver = _new_driver()
    yield driver
    try:
        console = driver.get_log("browser")
    except Exception:  # noqa: BLE001 - a driver that died already failed the test
        console = []
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{_slug(request.node.name)}-FAILED.png"))
        for entry in console:
            print("console:", entry.get("level"), entry.get("message"))
    driver.quit()
    uncaught = [e["message"] for e in console if "Uncaught" in e.get("message", "")]
    assert not uncaught, "uncaught JavaScript errors:\n" + "\n".join(uncaught)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


@pytest.fixture
def shot(request, browser):
    """shot("name") saves build/test-artifacts/<test>-NN-name.png, numbered in call order."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    counter = {"n": 0}
    test = _slug(request.node.name)
    for old in ARTIFACTS.glob(f"{test}-[0-9][0-9]-*.png"):
        old.unlink()

    def take(name):
        counter["n"] += 1
        path = ARTIFACTS / f"{test}-{counter['n']:02d}-{_slug(name)}.png"
        assert browser.save_screenshot(str(path)), f"screenshot {path} failed"
        return path

    return take


def wait_until(predicate, timeout=30.0, interval=0.1, message="condition"):
    """Polls predicate() until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_error})" if last_error else ""))
