"""A person in JupyterLab: notebooks 05 and 08 run in a real browser and their sliders redraw the figures.

JupyterLab is started the way `python3 kit.py lab` starts it (``kit.lab_command``, a free localhost
port, a token) on *copies* of the notebooks in a temporary folder, their outputs cleared, so the
committed notebooks are never touched and every output on the page comes from this run. Headless
Chromium (Debian's, driven by Playwright) opens each notebook, runs all cells from the Run menu, and
checks that every code cell ran and none shows an error; then, for each panel slider, it focuses the
slider's handle, presses the right arrow as a person would, and checks that the readout shows the new
value and that the panel's figure (a PNG in the panel's Output) was redrawn. Screenshots go to
test-artifacts/ (ignored by git).

Skipped, with the reason in pytest's summary, only where the `playwright` package or a Chromium
binary is missing; `python3 kit.py test` installs both where it can (the pinned test extra, and
Debian's `chromium` through apt-get when run as root).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
from pathlib import Path

import pytest

from support.lab import REPO, TOKEN, get_json, running_lab

ARTIFACTS = REPO / "test-artifacts"
# What the probe of this machine kind showed to work: without the background-networking flags,
# Chromium keeps trying Google's hosts on a closed network. Playwright adds --headless,
# --no-sandbox (chromium_sandbox=False) and a fresh --user-data-dir itself.
CHROMIUM_FLAGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# JupyterLab settings for the test: every cell in the DOM (no virtual scrolling), no news pop-up, and the
# notebook's own kernel started without asking: on a loaded machine JupyterLab sometimes shows its
# "Select Kernel" dialog even for a notebook whose kernelspec exists, and the dialog blocks every click.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none",
                                                                   "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}
RUN_SECONDS = 150      # all cells of one notebook (about 40 s here, with a 2-core machine shared)
REDRAW_SECONDS = 45    # one slider move: readout, kernel round trip, new PNG
PRESSES = 3            # arrow presses per slider

# notebook -> [(slider description, readout before, readout after PRESSES right-arrow steps)]
NOTEBOOKS = {
    # delta: log slider, step 0.05 decades, '.1e': 10^(-2 + 0.15) = 1.41e-2
    # eta_max: step 0.01, '.2f': 0.25 + 0.03
    "05_trust_region.ipynb": [("delta", "1.0e-2", "1.4e-2"), ("eta_max", "0.25", "0.28")],
    # eps_eta: log slider, step 0.05 decades, '.3g': 10^(-1 + 0.15) = 0.141
    # eps_alpha: log slider on the sweep's grid, 0.25 decades, '.3g': 10^(-2 + 0.75) = 0.0562
    "08_vmpo_em.ipynb": [("eps_eta", "0.100", "0.141"), ("eps_alpha", "0.0100", "0.0562")],
}

# In the page (the notebook panel on show): the prompt of every code cell ("[ ]:", "[*]:", "[12]:"), the kernel's status, and the
# text of every stderr output. JupyterLab shows an error (a traceback) as stderr too: warnings are
# told apart by what an error always shows, its exception line or the traceback header.
PAGE_STATE = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    if (!panel) return {prompts: [], status: null, stderr: []};
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
    const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
    const stderr = [...panel.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')].map(e => e.textContent);
    return {prompts, status: indicator ? indicator.dataset.status : null, stderr};
}"""
NOTEBOOK_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\s*\w*(Error|Exception|Interrupt)\b", re.M)


def chromium_executable() -> str | None:
    candidates = [os.environ.get("RLKIT_CHROMIUM"), "/usr/bin/chromium",
                  shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests: the playwright package is not installed "
                    "(python3 kit.py test installs it with the test extra)")
    executable = chromium_executable()
    if executable is None:
        pytest.skip("browser tests: no Chromium at /usr/bin/chromium (python3 kit.py test installs Debian's "
                    "chromium with apt-get when run as root; or set RLKIT_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on copies of the two notebooks, outputs cleared; yields (base URL, root folder)."""
    folder = tmp_path_factory.mktemp("lab")
    root = folder / "notebooks"
    root.mkdir()
    for name in NOTEBOOKS:
        notebook = json.loads((REPO / "notebooks" / name).read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        (root / name).write_text(json.dumps(notebook, indent=1))
    for relative, settings in LAB_SETTINGS.items():
        path = folder / "settings" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    ARTIFACTS.mkdir(exist_ok=True)
    with running_lab(folder, root_dir=root) as base:
        yield base, root
    shutil.copy(folder / "lab.log", ARTIFACTS / "lab.log")


def wait_until(condition, seconds: float, what: str, interval: float = 0.25):
    """Poll ``condition()`` until it returns something truthy; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(interval)


def ran(prompt: str) -> bool:
    return re.fullmatch(r"\[\d+\]:", prompt) is not None


def fail_on_dialog(page, name: str) -> None:
    """A JupyterLab dialog blocks every click: fail at once with its text instead of a click timeout."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.first.is_visible():
        text = " ".join(dialog.first.inner_text().split())
        raise AssertionError(f"{name}: JupyterLab shows a dialog that blocks the page: {text!r}")


def run_all_cells(page, name: str) -> None:
    """Run all cells from the Run menu; wait until every code cell has run and the kernel is idle."""
    def kernel_idle():
        return page.evaluate(PAGE_STATE)["status"] == "idle"

    wait_until(kernel_idle, 90, f"the kernel of {name} to start")
    time.sleep(1.0)  # the status can read idle for a moment while the session is still being set up
    wait_until(kernel_idle, 30, f"the kernel of {name} to be idle")
    for attempt in range(3):
        fail_on_dialog(page, name)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:  # a click too early (the notebook not yet the current widget) does nothing: click again
            wait_until(lambda: any(p != "[ ]:" for p in page.evaluate(PAGE_STATE)["prompts"]), 10,
                       "the cells to be queued")
            break
        except AssertionError:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")

    def finished():
        state = page.evaluate(PAGE_STATE)
        errors = [text for text in state["stderr"] if ERROR_TEXT.search(text)]
        assert not errors, f"{name}: a cell shows an error in JupyterLab:\n" + "\n\n".join(errors)
        done = all(ran(p) for p in state["prompts"]) and state["status"] == "idle"
        # Run all stops at an error; the error check above has reported it, this is a backstop.
        stopped = state["status"] == "idle" and not any(p == "[*]:" for p in state["prompts"])
        assert done or not stopped or time.monotonic() < idle_since[0] + 5, \
            f"{name}: the kernel is idle but not every cell ran: {state['prompts']}"
        if not stopped:
            idle_since[0] = time.monotonic()
        return done

    idle_since = [time.monotonic()]
    wait_until(finished, RUN_SECONDS, f"every cell of {name} to run", interval=0.5)


def saved_outputs(page, base: str, name: str) -> list[dict]:
    """Save the notebook (the copy) from the browser and read back the code cells the server stored."""
    dirty = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")
    page.locator(f"{NOTEBOOK_PANEL} .jp-Notebook").click(position={"x": 5, "y": 5})  # focus the notebook
    page.keyboard.press("Control+s")
    dirty.wait_for(state="detached", timeout=30_000)  # saved: the tab's unsaved-changes mark is gone

    def stored():
        try:
            _, model = get_json(f"{base}/api/contents/{name}?content=1")
        except urllib.error.HTTPError:  # read while the server was still replacing the file
            return None
        cells = [c for c in model["content"]["cells"] if c["cell_type"] == "code"]
        return cells if all(c["execution_count"] is not None for c in cells) else None

    return wait_until(stored, 30, f"{name} to be saved with every cell run", interval=1.0)


def panel_parts(page, description: str):
    """The slider whose label reads ``description``, its handle and readout, and its panel's figure."""
    label = page.locator("label.widget-label").filter(has_text=re.compile(rf"^{re.escape(description)}$"))
    slider = page.locator(f"{NOTEBOOK_PANEL} .widget-slider").filter(has=label)
    assert slider.count() == 1, f"expected one slider labelled {description!r}, found {slider.count()}"
    panel = slider.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' widget-vbox ')][1]")
    figure = panel.locator(".widget-output img")
    return slider, slider.locator(".noUi-handle"), slider.locator(".widget-readout"), panel, figure


def move_slider(page, notebook: str, description: str, before: str, after: str) -> None:
    slider, handle, readout, panel, figure = panel_parts(page, description)
    panel.scroll_into_view_if_needed()
    figure.wait_for(state="visible", timeout=REDRAW_SECONDS * 1000)
    assert readout.inner_text().strip() == before, f"{description}: readout before the move"
    old_png = figure.get_attribute("src")
    assert old_png and old_png.startswith("data:image/png"), f"{description}: the panel shows no PNG figure"
    panel.screenshot(path=ARTIFACTS / f"{Path(notebook).stem}-{description}-before.png")

    handle.focus()
    for _ in range(PRESSES):  # one step each, as a person taps the arrow key
        shown = readout.inner_text().strip()
        handle.press("ArrowRight")
        wait_until(lambda: readout.inner_text().strip() != shown, 10, f"the {description} readout to move")
    assert readout.inner_text().strip() == after, f"{description}: readout after {PRESSES} steps"

    # The kernel recomputes and replaces the Output's PNG once per step; wait for the figure to
    # change and then settle (the same src for 1.5 s with the kernel idle): the last step's figure.
    wait_until(lambda: figure.get_attribute("src") != old_png, REDRAW_SECONDS, f"the {description} figure to redraw")
    last = {"src": None, "since": time.monotonic()}

    def settled():
        src, idle = figure.get_attribute("src"), page.evaluate(PAGE_STATE)["status"] == "idle"
        if src != last["src"] or not idle:
            last.update(src=src, since=time.monotonic())
        return time.monotonic() - last["since"] > 1.5

    wait_until(settled, REDRAW_SECONDS, f"the {description} figure to settle")
    new_png = figure.get_attribute("src")
    assert new_png.startswith("data:image/png") and new_png != old_png
    assert readout.inner_text().strip() == after, f"{description}: the readout changed back"
    panel.screenshot(path=ARTIFACTS / f"{Path(notebook).stem}-{description}-after.png")
    panel.evaluate("e => e.scrollIntoView({block: 'center'})")  # the panel as it looks in JupyterLab
    page.screenshot(path=ARTIFACTS / f"{Path(notebook).stem}-{description}-lab.png")


@pytest.mark.slow
@pytest.mark.parametrize("notebook", list(NOTEBOOKS))
def test_notebook_runs_and_its_sliders_redraw_in_jupyterlab(browser, lab, notebook):
    base, root = lab
    committed = (REPO / "notebooks" / notebook).read_bytes()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        # A workspace of its own, reset: only this notebook open (the server remembers open tabs).
        workspace = Path(notebook).stem
        page.goto(f"{base}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={TOKEN}", timeout=90_000)
        page.locator(f"{NOTEBOOK_PANEL} .jp-CodeCell").first.wait_for(timeout=90_000)
        tabs = page.locator(".jp-NotebookPanel")
        assert tabs.count() == 1, f"expected only {notebook} open, found {tabs.count()} notebooks"
        try:
            run_all_cells(page, notebook)
        finally:
            page.screenshot(path=ARTIFACTS / f"{Path(notebook).stem}-run.png")
        for cell in saved_outputs(page, base, notebook):  # exact: the outputs' types as stored
            errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
            assert not errors, f"{notebook}: cell [{cell['execution_count']}] raised {errors[0]['ename']}"
        for description, before, after in NOTEBOOKS[notebook]:
            move_slider(page, notebook, description, before, after)
    finally:
        context.close()
    assert (REPO / "notebooks" / notebook).read_bytes() == committed, "the committed notebook was modified"
