"""The explorer app in a real browser (headless Debian chromium) inside a host built on the extension's
AppBridge, talking to the real server over streamable HTTP on loopback with the local S3 mirror.

Each state is saved as a screenshot in test-artifacts/explorer/ (or $IDC_MCP_TEST_ARTIFACTS/explorer).
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from idc_mcp.tools.licenses import check_licenses
from idc_mcp.tools.selection import Selection
from tests import explorer_browser as eb
from tests.parquet import truth

pytestmark = pytest.mark.slow
ARTIFACTS = Path(os.environ.get("IDC_MCP_TEST_ARTIFACTS", eb.ROOT / "test-artifacts")) / "explorer"
CASES = ("ct", "seg", "mr", "pt", "sm_full", "rtstruct")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, built_catalog, preview_mirror):
    eb.need_browser()
    from playwright.sync_api import expect

    # Expectations wait for the page to get there (they poll, they do not sleep); the bound is generous
    # because previews come from a server sharing a loaded machine with the rest of the suite.
    expect.set_options(timeout=60_000)
    folder = tmp_path_factory.mktemp("explorer")
    page_html = eb.host_page(folder)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with eb.serve(folder, built_catalog, preview_mirror.endpoint) as served, eb.browser() as chromium:
        yield served, chromium, page_html, preview_mirror


@pytest.fixture
def opened(setup):
    served, chromium, page_html, mirror = setup
    uids = [mirror.cases[name].uid for name in CASES]
    page, frame, started = eb.open_host(chromium, served, page_html, {"series_uids": uids})
    yield page, frame, mirror, uids
    page.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _calls(page, name: str) -> list[dict]:
    return [c for c in page.evaluate("window.host.calls") if c["name"] == name]


def _uid_list(uids: list[str]) -> str:
    return ", ".join(f"'{u}'" for u in uids)


def test_the_app_loads_and_shows_the_overview_with_the_right_counts(opened):
    page, frame, _, uids = opened
    series, patients, studies = truth(
        "SELECT count(*), count(DISTINCT PatientID), count(DISTINCT StudyInstanceUID) FROM {index} "
        f"WHERE SeriesInstanceUID IN ({_uid_list(uids)})"
    )[0]
    from playwright.sync_api import expect

    expect(frame.locator("#total-series b")).to_have_text(f"{series:,}")
    expect(frame.locator("#total-patients b")).to_have_text(f"{patients:,}")
    expect(frame.locator("#total-studies b")).to_have_text(f"{studies:,}")
    modalities = truth(
        f"SELECT Modality, count(*) FROM {{index}} WHERE SeriesInstanceUID IN ({_uid_list(uids)}) GROUP BY 1"
    )
    for modality, count in modalities:
        bar = frame.locator(f'.bar[data-facet="modality"][data-value="{modality}"] .n')
        expect(bar).to_have_text(f"{count:,}")
    expect(frame.locator(".card")).to_have_count(len(uids))
    expect(frame.locator(f'.card[data-uid="{uids[0]}"] .thumb img')).to_have_count(1)  # a lazy preview came
    assert page.evaluate("window.host.errors") == []
    _shot(page, "1-overview")


def test_clicking_a_bar_narrows_the_selection_and_a_chip_removes_it(opened):
    from playwright.sync_api import expect

    page, frame, _, uids = opened
    expect(frame.locator("#total-series b")).to_have_text(str(len(uids)))
    frame.locator('.bar[data-facet="modality"][data-value="CT"]').click()
    expect(frame.locator("#total-series b")).to_have_text("1")
    narrowing = _calls(page, "explorer_overview")
    assert narrowing and narrowing[-1]["arguments"]["filters"] == {"modality": ["CT"]}
    expect(frame.locator(".chip")).to_have_count(1)
    expect(frame.locator(".card")).to_have_count(1)
    told = page.evaluate("window.host.context")
    assert told and "Modality = CT" in told[-1]["content"][0]["text"]
    _shot(page, "2-narrowed")
    frame.locator(".chip").click()
    expect(frame.locator("#total-series b")).to_have_text(str(len(uids)))
    expect(frame.locator(".chip")).to_have_count(0)


def _image(frame) -> tuple[str, bytes]:
    src = frame.locator("#viewer-img").get_attribute("src")
    data = base64.b64decode(src.split(",", 1)[1])
    return src, Image.open(io.BytesIO(data)).convert("RGB").tobytes()


def test_the_viewer_shows_slices_and_the_seg_overlay_toggles(opened):
    from playwright.sync_api import expect

    page, frame, mirror, _ = opened
    frame.locator(f'.card[data-uid="{mirror.cases["ct"].uid}"]').click()
    expect(frame.locator("#slice-label")).to_be_visible()
    expect(frame.locator("#slice-number")).to_have_text("5 / 9")
    _, middle = _image(frame)
    _shot(page, "3-viewer")
    shown = frame.locator("body").get_attribute("data-shown")
    frame.locator("#slice").fill("0")  # the slider moved to the first slice
    expect(frame.locator("#slice-number")).to_have_text("1 / 9")
    expect(frame.locator("body")).not_to_have_attribute("data-shown", shown)
    _, first = _image(frame)
    assert first != middle
    _shot(page, "4-slider")

    frame.locator(f'.card[data-uid="{mirror.cases["seg"].uid}"]').click()
    expect(frame.locator("#overlay-label")).to_be_visible()
    expect(frame.locator("#legend li")).not_to_have_count(0)
    overlay_src, overlay = _image(frame)
    _shot(page, "5-seg-overlay")
    frame.locator("#overlay").uncheck()
    expect(frame.locator("#viewer-img")).not_to_have_attribute("src", overlay_src)
    _, plain = _image(frame)
    assert plain != overlay
    _shot(page, "6-seg-off")

    frame.locator(f'.card[data-uid="{mirror.cases["sm_full"].uid}"]').click()
    expect(frame.locator("#viewer-caption")).to_contain_text("slide thumbnail")
    expect(frame.locator("#slice-label")).to_be_hidden()  # a slide has one picture, no slices
    frame.locator("#open-viewer").click()  # through get_viewer_url and the host's open-link request
    expect(frame.locator("#viewer-caption")).to_contain_text("Opened https://viewer.imaging.datacommons")
    assert page.evaluate("window.host.links")[-1].startswith("https://viewer.imaging.datacommons.cancer.gov/")
    _shot(page, "6b-slide")


def test_the_license_action_shows_check_licenses_verdict(opened, catalog):
    from playwright.sync_api import expect

    page, frame, _, uids = opened
    expect(frame.locator("#total-series b")).to_have_text(str(len(uids)))
    frame.locator('[data-action="licenses"]').click()
    expect(frame.locator("#action-result")).to_have_attribute("data-state", "done")
    report = check_licenses(catalog, Selection(series_uids=tuple(uids)))
    expect(frame.locator("#action-result .verdict")).to_have_text(f"Commercial use: {report.commercial_use}")
    expect(frame.locator("#action-result .verdict-text")).to_have_text(report.verdict)
    assert _calls(page, "check_licenses")[-1]["arguments"]["series_uids"] == uids
    assert "checked the licenses" in page.evaluate("window.host.context")[-1]["content"][0]["text"]
    _shot(page, "7-licenses")


def test_forged_calls_through_the_app_channel_get_the_tools_refusals(opened):
    page, frame, _, uids = opened
    from playwright.sync_api import expect

    expect(frame.locator("#total-series b")).to_have_text(str(len(uids)))
    app_frame = page.locator("#app").element_handle().content_frame()
    forged = app_frame.evaluate(
        """async (calls) => {
            const answers = [];
            for (const [i, params] of calls.entries()) {
                answers.push(await new Promise((resolve) => {
                    const id = 90000 + i;
                    const listen = (event) => {
                        if (event.data?.id !== id) return;
                        window.removeEventListener("message", listen);
                        resolve(event.data);
                    };
                    window.addEventListener("message", listen);
                    window.parent.postMessage({ jsonrpc: "2.0", id, method: "tools/call", params }, "*");
                }));
            }
            return answers;
        }""",
        [
            {"name": "explorer_image", "arguments": {"series_uid": "../../etc/passwd"}},
            {"name": "explorer_series", "arguments": {"selection": {"series_uids": uids}, "page": 9999}},
            {"name": "explorer_image", "arguments": {"series_uid": "1.2.3.4.5.6.7.8.9.10"}},
            {"name": "export_manifest", "arguments": {"series_uids": uids, "path": "../../escape.txt"}},
        ],
    )
    texts = [a["result"]["content"][0]["text"] for a in forged]
    assert all(a["result"]["isError"] for a in forged), texts
    assert "not a DICOM UID" in texts[0]
    assert "past the last page" in texts[1]
    assert "Unknown series_uid" in texts[2]
    assert "download root" in texts[3]


def test_the_app_follows_the_host_theme_and_fits_a_narrow_column(setup):
    from playwright.sync_api import expect

    served, chromium, page_html, mirror = setup
    uids = [mirror.cases[name].uid for name in CASES]
    page, frame, _ = eb.open_host(chromium, served, page_html, {"series_uids": uids}, width=340, theme="dark")
    try:
        expect(frame.locator("#total-series b")).to_have_text(str(len(uids)))
        expect(frame.locator("html")).to_have_attribute("data-theme", "dark")
        app = page.locator("#app").element_handle().content_frame()
        # nothing wider than the column: no sideways scrolling in a chat
        assert app.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        _shot(page, "8-dark-narrow")
        page.evaluate("window.setTheme('light')")
        expect(frame.locator("html")).to_have_attribute("data-theme", "light")
        # keyboard: Tab reaches the first action and Enter runs it
        frame.locator('[data-action="size"]').focus()
        page.keyboard.press("Enter")
        expect(frame.locator("#action-result")).to_have_attribute("data-state", "done")
        expect(frame.locator("#action-result .verdict")).to_contain_text(f"{len(uids)} series")
        assert _calls(page, "estimate_size")[-1]["arguments"]["download_dir"] == "idc_explorer"
    finally:
        page.close()


def test_export_manifest_and_a_planned_download_are_real_tool_calls(opened):
    from playwright.sync_api import expect

    page, frame, _, uids = opened
    expect(frame.locator("#total-series b")).to_have_text(str(len(uids)))
    frame.locator('[data-action="manifest"]').click()
    expect(frame.locator("#action-result")).to_have_attribute("data-state", "done")
    manifest = frame.locator("#action-result pre").inner_text()
    assert manifest.count("cp ") == len(uids)  # one s5cmd line per series
    frame.locator('[data-action="download"]').click()
    expect(frame.locator("#confirm-download")).to_be_visible()  # a dry run first: nothing written yet
    assert _calls(page, "download")[-1]["arguments"]["dry_run"] is True
    assert "planned a download" in page.evaluate("window.host.context")[-1]["content"][0]["text"]
    _shot(page, "9-download-plan")


def test_save_as_cohort_writes_the_shown_selection_and_shows_the_tools_refusal(setup, opened):
    from playwright.sync_api import expect

    served = setup[0]
    page, frame, _, uids = opened
    expect(frame.locator("#total-series b")).to_have_text(str(len(uids)))
    frame.locator('button[data-action="cohort"]').click()  # no name: the app asks for one, no call is made
    expect(frame.locator("#action-result")).to_have_attribute("data-state", "error")
    expect(frame.locator("#action-result")).to_contain_text("name")
    assert _calls(page, "save_cohort") == []

    shown = int(frame.locator("#total-series b").inner_text().replace(",", ""))
    frame.locator("#cohort-name").fill("explorer_six")
    frame.locator('button[data-action="cohort"]').click()
    expect(frame.locator("#action-result")).to_have_attribute("data-state", "done")
    verdict = frame.locator("#action-result .verdict")
    expect(verdict).to_contain_text(f"Saved cohort explorer_six: {shown} series")
    expect(frame.locator("#action-result .cohort-file")).to_contain_text("explorer_six.cohort.json")
    sent = _calls(page, "save_cohort")[-1]["arguments"]
    assert sent["name"] == "explorer_six" and sent["description"].startswith("Saved from the IDC explorer")
    narrowed = page.evaluate("window.host.context")[-1]["structuredContent"]["selection"]
    assert {key: sent[key] for key in narrowed} == narrowed  # exactly the selection the other actions get
    saved = served.download_root / "cohorts" / "explorer_six.cohort.json"
    assert saved.is_file()
    assert len(json.loads(saved.read_text())["members"]) == shown
    told = page.evaluate("window.host.context")[-1]["content"][0]["text"]
    assert "saved the selection as the cohort" in told and "explorer_six" in told
    _shot(page, "10-cohort-saved")

    # a bad name: the server refuses it and the app shows the tool's own words; nothing is written
    frame.locator("#cohort-name").fill("../x")
    frame.locator("#cohort-name").press("Enter")  # the keyboard saves too
    expect(frame.locator("#action-result")).to_have_attribute("data-state", "error")
    refusal = [c for c in _calls(page, "save_cohort") if c["arguments"]["name"] == "../x"]
    assert refusal, "the bad name went to the server (it alone validates names)"
    expect(frame.locator("#action-result .not-allowed")).to_contain_text("Cohort name '../x' is not allowed")
    assert not (served.download_root / "x.cohort.json").exists()
    assert [p.name for p in (served.download_root / "cohorts").glob("*.cohort.json")] == [saved.name]
    _shot(page, "11-cohort-refused")
