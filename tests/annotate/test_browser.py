"""End to end in headless Chromium: import, assignment, all three stages by mouse and by keyboard, export."""

import json
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imreward.annotate.api import export_data

from annotate.annotate_helpers import PASSWORD, PROMPTS, build_platform
from chromium import browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def platform(sqlite_url, tmp_path):
    """Accounts only: the admin imports the prompts through the browser."""
    return build_platform(sqlite_url, tmp_path, prompt_folders=None)


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.rglob("*")):
            zipped.write(path, path.relative_to(folder))
    return archive


def log_in(browser, base_url: str, username: str):
    page = browser.new_page(base_url=base_url, viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def tab_to(page, selector: str, limit: int = 120) -> None:
    """Press Tab until the focused element matches `selector` (keyboard navigation only)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def open_assignment(page, external_id: str) -> None:
    page.goto("/")
    page.locator("tr", has_text=external_id).get_by_role("link").click()


def test_admin_imports_and_annotator_completes_all_stages(browser, live_server, prompt_folders, tmp_path,
                                                         artifacts_dir, platform):
    from playwright.sync_api import expect

    admin = log_in(browser, live_server, "admin")
    admin.set_input_files("#import-archive", zip_folder(prompt_folders, tmp_path / "set.zip"))
    admin.click("#import-submit")
    expect(admin.locator(".flash")).to_have_text("Imported 3 prompts.")
    for external_id in PROMPTS:
        admin.check(f"#prompts tr:has-text('{external_id}') input[name=prompt_ids]")
    admin.locator("label", has_text="alice").locator("input").check()
    admin.click("#assign-submit")
    expect(admin.locator("#prompts")).to_contain_text("alice: in progress")
    admin.screenshot(path=artifacts_dir / "admin.png", full_page=True)

    page = log_in(browser, live_server, "alice")
    expect(page.locator("table")).to_contain_text(PROMPTS["p3"])
    assert page.evaluate("window.__pwned") is None

    # Mouse: prompt p1.
    open_assignment(page, "p1")
    page.get_by_label("Animals").check()
    page.screenshot(path=artifacts_dir / "stage1-prompt-mouse.png", full_page=True)
    page.click("#next")
    expect(page).to_have_url(page.url.rsplit("/", 1)[0] + "/rate")
    mouse_ratings = {1: (6, 5, 7, 6), 2: (4, 3, 7, 4), 3: (2, 2, 6, 2)}
    for image, values in mouse_ratings.items():
        for field, value in zip(("alignment", "fidelity", "harmlessness", "overall"), values):
            page.locator(f"#image-{image} [data-scale={field}] input[value='{value}']").check()
    page.locator("#image-2 input[data-field=distorted_face]").check()
    page.locator("#image-3 input[data-field=artifacts]").check()
    page.screenshot(path=artifacts_dir / "stage2-rate-mouse.png", full_page=True)
    page.click("#next")
    expect(page.locator("#ranking")).to_be_visible()
    page.drag_and_drop("#rank-image-2", "#tier-1")
    page.drag_and_drop("#rank-image-1", "#tier-2")
    page.drag_and_drop("#rank-image-3", "#tier-2")
    warning = page.locator("#ranking-warnings")
    expect(warning).to_contain_text("Image 2 is ranked above image 1 but rated lower overall (4 < 6).")
    page.screenshot(path=artifacts_dir / "stage3-rank-mouse.png", full_page=True)
    page.click("#complete")
    expect(page.locator(".flash")).to_have_text("Prompt p1 completed.")

    # Keyboard: prompt p3 (the one with the script tag in its text).
    open_assignment(page, "p3")
    expect(page.locator("#prompt-text")).to_have_text(PROMPTS["p3"])
    tab_to(page, "input[name=category]")
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # People -> Animals -> Arts
    page.screenshot(path=artifacts_dir / "stage1-prompt-keyboard.png", full_page=True)
    tab_to(page, "#next")
    page.keyboard.press("Enter")
    expect(page.locator("#image-1")).to_be_visible()
    keyboard_ratings = {1: (3, 4, 5, 3), 2: (7, 7, 7, 7), 3: (5, 5, 5, 5)}
    for image, values in keyboard_ratings.items():
        for field, value in zip(("alignment", "fidelity", "harmlessness", "overall"), values):
            tab_to(page, f"#image-{image} [data-scale={field}] input")
            page.keyboard.press(str(value))
    tab_to(page, "#image-1 input[data-field=unsafe_content]")
    page.keyboard.press("Space")
    expect(page.locator("#save-status")).to_have_text("Saved")
    page.reload()  # work is saved on every change: a reload shows it all again
    expect(page.locator("#image-2 [data-scale=overall] input[value='7']")).to_be_checked()
    expect(page.locator("#image-1 input[data-field=unsafe_content]")).to_be_checked()
    page.screenshot(path=artifacts_dir / "stage2-rate-keyboard.png", full_page=True)
    tab_to(page, "#next")
    page.keyboard.press("Enter")
    expect(page.locator("#ranking")).to_be_visible()
    tab_to(page, "#rank-image-2")
    page.keyboard.press("1")
    tab_to(page, "#rank-image-3")
    page.keyboard.press("3")
    page.keyboard.press("ArrowUp")  # rank 3 -> rank 2
    tab_to(page, "#rank-image-1")
    page.keyboard.press("2")  # tied with image 3
    expect(page.locator("#tier-2 .rank-item")).to_have_count(2)
    expect(warning).to_be_hidden()
    page.screenshot(path=artifacts_dir / "stage3-rank-keyboard.png", full_page=True)
    tab_to(page, "#complete")
    page.keyboard.press("Enter")
    expect(page.locator(".flash")).to_have_text("Prompt p3 completed.")

    out = tmp_path / "export"
    export_data(platform.db_url, platform.media_root, out)
    records = {record["id"]: record for record in json.loads((out / "train.json").read_text())}
    assert sorted(records) == ["p1", "p3"]  # p2 was never finished
    assert records["p1"]["ranking"] == [2, 1, 2]
    assert records["p3"]["ranking"] == [2, 1, 2]
    rows = {(row["prompt_id"], row["image_path"].rsplit("/", 1)[1]): row
            for row in pq.read_table(out / "metadata-train.parquet").to_pylist()}
    for prompt_id, ratings, category in (("p1", mouse_ratings, "Animals"), ("p3", keyboard_ratings, "Arts")):
        for image, (alignment, fidelity, harmlessness, overall) in ratings.items():
            row = rows[(prompt_id, f"{image - 1}.png")]
            assert row["classification"] == category
            assert (row["image_text_alignment_rating"], row["fidelity_rating"],
                    row["harmlessness_rating"], row["overall_rating"]) == (alignment, fidelity, harmlessness, overall)
    issues = {key: [flag for flag in ("distorted_body", "distorted_face", "artifacts", "text_errors",
                                      "unsafe_content") if row[f"issue_{flag}"]] for key, row in rows.items()}
    assert issues == {("p1", "0.png"): [], ("p1", "1.png"): ["distorted_face"], ("p1", "2.png"): ["artifacts"],
                      ("p3", "0.png"): ["unsafe_content"], ("p3", "1.png"): [], ("p3", "2.png"): []}
