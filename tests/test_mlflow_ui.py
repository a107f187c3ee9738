"""What a user sees in `mlflow ui` after kexp runs, checked in a real headless Chromium.

The MLflow params and metrics kexp logs are tested through the client elsewhere; this test
opens the page a person would open (`make ui`), so it also catches what only the browser
shows: runs the UI cannot render, a search whose trials are not nested under its parent,
params or metrics the compare view does not show. Needs Debian's `chromium` and
`chromium-driver` (.ci/run installs them) and selenium (dev extras); skipped without them.
Screenshots go to $KEXP_TEST_ARTIFACTS (default test-artifacts/ in the checkout).
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_kexp

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="no browser: apt-get install chromium chromium-driver "
                              "(/usr/bin/chromium and /usr/bin/chromedriver)"),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extras")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT_S = 60
LRS = ("0.01", "0.002")
ARTIFACTS = Path(os.environ.get("KEXP_TEST_ARTIFACTS", ROOT / "test-artifacts"))

# For each element: is the centre of its box inside the window and is the element (or a child)
# what the browser hit-tests there? That is "visible": not clipped by a scroll box, not covered.
ON_SCREEN_JS = """
return arguments[0].map(el => {
  const r = el.getBoundingClientRect();
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const inside = x >= 0 && y >= 0 && x < window.innerWidth && y < window.innerHeight;
  const hit = inside ? document.elementFromPoint(x, y) : null;
  return {shown: !!hit && el.contains(hit), top: r.top, left: r.left};
});
"""

# Scroll a scroll box to y and return once the page has handled the scroll event (the next
# animation frame), as after a turn of the mouse wheel.
SCROLL_JS = """
const [box, y, done] = arguments;
const before = box.scrollTop;
const handled = () => requestAnimationFrame(() => done());
box.addEventListener('scroll', handled, {once: true});
box.scrollTop = y;
if (box.scrollTop === before) { box.removeEventListener('scroll', handled); done(); }
"""

# The metrics' names grid has followed the values grid to y and neither is still scrolling.
SETTLED_JS = """
const [names, values, y] = arguments;
const still = g => g.firstElementChild.style.pointerEvents !== 'none';
return Math.abs(names.scrollTop - y) <= 1 && still(names) && still(values);
"""


def ui_metric(value: float) -> str:
    """A metric value as MLflow's UI prints it (Utils.formatMetric in mlflow/server/js):
    three decimals below 10, JavaScript's number-to-string (no trailing zeros)."""
    assert 0.001 <= abs(value) < 10, value  # accuracies; the UI's other branches are not needed
    rounded = math.floor(value * 1000 + 0.5) / 1000  # JS Math.round rounds halves up
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two kexp runs (one sweep: one process, a TensorFlow import less) and a two-trial search
    in one store, started side by side."""
    work = tmp_path_factory.mktemp("ui")
    sweep = ["-m", "trainer.epochs=2", "trainer.verbose=0", "logger.log_model=false",
             f"optimizer.lr={','.join(LRS)}", "run_name=mlp-lr${optimizer.lr}"]
    search = ["tuner.max_trials=2", "trainer.epochs=1", "trainer.verbose=0"]
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(run_kexp, sweep, work),
                pool.submit(run_kexp, search, work, module="kexp.tune")]
        for job in jobs:
            done = job.result()
            assert done.returncode == 0, done.stderr[-3000:]
    return read_logs(work / "logs")


def read_logs(root: Path) -> dict[str, Any]:
    """The runs' names, MLflow ids and metrics, the search's parent and trial names, from the
    files kexp wrote (not from MLflow, whose UI is under test)."""
    runs = []
    for lr, run_dir in zip(LRS, sorted(root.glob("multiruns/*/[0-9]")), strict=True):
        with open(run_dir / "history.csv") as f:
            last_epoch = list(csv.DictReader(f))[-1]
        runs.append({"name": f"mlp-lr{lr}", "lr": lr,
                     "id": (run_dir / "mlflow_run_id").read_text().strip(),
                     "val_accuracy": float(last_epoch["val_accuracy"]),
                     "test_accuracy": json.loads((run_dir / "metrics.json").read_text())
                     ["test_accuracy"]})
    (project,) = (root / "tuning").iterdir()
    (table,) = root.glob("tune/*/trials.csv")
    with open(table) as f:
        trials = sorted(f"trial-{row['trial']}" for row in csv.DictReader(f))
    return {"dir": root, "runs": runs, "parent": f"tune-{project.name}", "trials": trials}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_ui(logs: dict[str, Any]) -> Iterator[str]:
    """`mlflow ui` on a free local port against the runs' store; stopped (its whole process
    group) whatever the test does."""
    port = free_port()
    log_path = logs["dir"] / "mlflow_ui.log"
    # one worker: the default four would each import MLflow and the page needs one
    cmd = [str(Path(sys.executable).with_name("mlflow")), "ui", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{logs['dir'] / 'mlflow.db'}"]
    # no job runner: it starts seven more Python processes (huey workers) the page never uses
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log_path, "w") as log:
        server = subprocess.Popen(cmd, cwd=logs["dir"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while not _healthy(base):
            assert server.poll() is None and time.monotonic() < deadline, (
                f"mlflow ui did not come up: {log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Debian's Chromium through its chromedriver, named explicitly so Selenium Manager never
    tries to download a browser or driver."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1920,1080", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")  # and should it ever be asked, it answers offline
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                                  options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"mlflow_ui_{name}.png"))


def wait_text(driver: webdriver.Chrome, *texts: str) -> None:
    """Until the rendered page shows every text (the React app loads its data after the page)."""
    WebDriverWait(driver, WAIT_S).until(
        lambda d: all(t in d.find_element(By.TAG_NAME, "body").text for t in texts),
        message=f"page never showed {texts}")


def on_screen(driver: webdriver.Chrome, elements: list[WebElement]) -> list[dict[str, Any]]:
    return driver.execute_script(ON_SCREEN_JS, elements)


def assert_shown(driver: webdriver.Chrome, elements: list[WebElement], what: str) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", elements[0])
    hidden = [el.text for el, box in zip(elements, on_screen(driver, elements), strict=True)
              if not box["shown"]]
    assert not hidden, f"{what}: not visible on the page: {hidden}"


def experiment_id(base: str) -> str:
    with urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=kexp") as reply:
        return json.load(reply)["experiment"]["experiment_id"]


def run_link(driver: webdriver.Chrome, name: str) -> WebElement:
    return driver.find_element(By.XPATH, f"//a[normalize-space()='{name}']")


def test_mlflow_ui_shows_the_runs_their_params_metrics_and_the_search_trials(
        logs: dict[str, Any], mlflow_ui: str, browser: webdriver.Chrome) -> None:
    exp = experiment_id(mlflow_ui)
    runs = logs["runs"]
    names = [r["name"] for r in runs]

    # the experiment's runs table (MLflow 3 opens GenAI views unless told the workflow)
    browser.get(f"{mlflow_ui}/#/experiments/{exp}/runs?workflowType=machine_learning")
    try:
        wait_text(browser, *names, logs["parent"])
        assert_shown(browser, [run_link(browser, n) for n in [*names, logs["parent"]]], "runs")
        # a search is one parent row whose trials open under it with its expander
        parent = run_link(browser, logs["parent"])
        parent.find_element(By.XPATH, "./ancestor::*[@role='gridcell'][1]//button").click()
        wait_text(browser, *logs["trials"])
        trials = [run_link(browser, t) for t in logs["trials"]]
        assert_shown(browser, trials, "trials")
        # nested: the trials' rows come right below their parent's
        links = [parent, *trials, *(run_link(browser, n) for n in names)]
        rows = [el.text for el in sorted(links, key=lambda el: el.rect["y"])]
        below = rows.index(logs["parent"]) + 1
        assert sorted(rows[below:below + len(trials)]) == logs["trials"], rows
        assert all(t.rect["x"] > parent.rect["x"] for t in trials), "trials are not indented"
    finally:
        screenshot(browser, "experiment")

    # the compare view of the two runs, in the order of the URL
    ids = json.dumps([r["id"] for r in runs], separators=(",", ":"))
    browser.get(f"{mlflow_ui}/#/compare-runs?runs={ids}&experiments=[\"{exp}\"]"
                "&workflowType=machine_learning")
    try:
        wait_text(browser, "Comparing 2 Runs", *names, "optimizer.lr", "val_accuracy")
        for label, expected in [("Run Name:", names), ("model.name", ["mlp", "mlp"]),
                                ("optimizer.lr", list(LRS))]:
            row = browser.find_element(By.XPATH, f"//tr[th[normalize-space()='{label}']]")
            cells = row.find_elements(By.XPATH, "./td")
            assert [c.text for c in cells] == expected, label
            assert_shown(browser, [row.find_element(By.XPATH, "./th"), *cells], label)
        for metric in ("val_accuracy", "test_accuracy"):
            shown = metric_row(browser, metric)
            assert shown == [ui_metric(r[metric]) for r in runs], metric
    finally:
        screenshot(browser, "compare")


def metric_row(driver: webdriver.Chrome, metric: str) -> list[str]:
    """The values the compare view shows beside a metric's name, once that row is scrolled into
    sight. The metrics table is two virtualized grids (names | values) 300 px high that render
    only the rows near their view, and only the values grid scrolls: scroll it down a view at a
    time, as a reader would, until the name appears, then bring that row to the top."""
    section = driver.find_element(
        By.XPATH, "//div[contains(@class,'collapse-item')][.//*[@aria-label='collapse Metrics']]")
    names, values = section.find_elements(By.CLASS_NAME, "ReactVirtualized__Grid")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", names)
    find = f".//div[a[normalize-space()='{metric}']]"
    y = 0
    while not names.find_elements(By.XPATH, find):
        bottom = driver.execute_script(
            "return arguments[0].scrollHeight - arguments[0].clientHeight", values)
        assert y < bottom, f"{metric}: not in the compare view's metrics"
        y = min(y + names.size["height"] - 45, bottom)
        scroll_metrics(driver, names, values, y)
    name = names.find_element(By.XPATH, find)
    top = driver.execute_script("return arguments[0].offsetTop", name)
    scroll_metrics(driver, names, values, top)
    cells = [c for c in values.find_elements(By.XPATH, "./div/div")
             if driver.execute_script("return arguments[0].offsetTop", c) == top]
    cells.sort(key=lambda c: c.rect["x"])
    boxes = on_screen(driver, [name, *cells])
    assert all(b["shown"] for b in boxes), f"{metric}: its row is not visible: {boxes}"
    assert all(abs(b["top"] - boxes[0]["top"]) <= 2 for b in boxes), f"{metric}: row misaligned"
    return [c.text for c in cells]


def scroll_metrics(driver: webdriver.Chrome, names: WebElement, values: WebElement,
                   y: int) -> None:
    """Scroll the metrics' values grid to y (as far as the names grid can follow) and wait for the
    names grid to follow. MLflow 3.17 moves the names to where the values were one scroll
    event earlier, so scroll twice (y-1, then y), as a second turn of the wheel would: the two
    grids then agree to a pixel."""
    most = driver.execute_script("return arguments[0].scrollHeight - arguments[0].clientHeight",
                                 names)
    y = min(y, most)
    for step in (max(y - 1, 0), y):
        driver.execute_async_script(SCROLL_JS, values, step)
    # react-virtualized turns pointer events off on a grid's cells while it scrolls (150 ms)
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.execute_script(SETTLED_JS, names, values, y),
        message="the metric names did not follow the values")
