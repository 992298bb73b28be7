"""The HTML reports of ``eval``, ``eval --benchmarks`` and ``benchmark`` in headless Chromium: they
render from disk, sort, raise no script error, load nothing from the network and show markup in
prompts and file names as text."""

import json

import pytest
from chromium import browser  # noqa: F401  (fixture)
from eval.eval_helpers import write_gray_png
from eval.test_cli import counting_scorers, run_cli  # noqa: F401  (fixture)
from published_datasets import write_pickapic

pytestmark = pytest.mark.browser

MARKUP = '<b>bold</b><img src="http://127.0.0.1:9/x.png"><script>window.injected = 1</script>'
FILE_MARKUP = "<img src=x onerror=window.injected=1>.png"  # a file name holds no slash


def open_page(browser, path):  # noqa: F811
    """The page at ``path`` with every request and script error recorded."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.set_default_timeout(10_000)
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    for image in page.locator("img").all():
        image.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")
    return page, requests, errors


def assert_offline_and_clean(page, requests, errors):
    assert errors == []
    assert requests and all(url.startswith("file://") for url in requests), requests
    assert page.evaluate("Array.from(document.images).every(image => image.naturalWidth > 0)")
    assert page.evaluate("window.injected === undefined")


def column_values(page, table, column):
    return page.locator(f"{table} tbody tr").evaluate_all(
        f"rows => rows.map(row => row.cells[{column}].textContent.trim())")


def test_eval_report_shows_images_in_each_order_with_markup_as_text(tmp_path, browser, counting_scorers):  # noqa: F811
    root = tmp_path / "data"
    levels = {"a.png": 220, FILE_MARKUP: 120, "c.png": 30}
    entries = []
    for index, prompt in enumerate([MARKUP, "a plain prompt"]):
        names = [f"p{index}/{name}" for name in levels]
        for name, level in zip(names, levels.values()):
            write_gray_png(root / name, level)
        entries.append({"id": f"p{index}", "prompt": prompt, "generations": names, "ranking": [1, 2, 3]})
    (root / "test.json").write_text(json.dumps(entries))
    out = tmp_path / "report"
    assert run_cli(["eval", "--data", str(root / "test.json"), "--scorers", "test-bright,test-dark", "-o", str(out),
                    "--bootstrap", "20", "-q"]) == 0
    thumbs = sorted((out / "thumbs").iterdir())
    assert len(thumbs) == 6

    page, requests, errors = open_page(browser, out / "report.html")
    assert_offline_and_clean(page, requests, errors)
    assert page.get_by_text(MARKUP, exact=True).first.is_visible()  # the prompt, as text
    assert page.locator(".prompt b b").count() == 0
    assert page.get_by_text(FILE_MARKUP).count() > 0  # the file name, as text
    # test-dark orders every pair against the humans: its pairs are listed, the largest margin first.
    assert page.get_by_text("test-dark: 6 pairs against the humans").count() == 1
    assert page.get_by_text("test-bright: 0 pairs against the humans").count() == 1
    margins = [float(text.split()[1]) for text in page.locator(".pair .text b").all_inner_texts()]
    assert margins == sorted(margins, reverse=True) and len(margins) == 6
    first_row = page.locator(".prompt").first.locator(".row")
    assert first_row.nth(0).locator("figcaption").all_inner_texts()[0].startswith("human rank 1")
    assert first_row.nth(2).locator("figcaption").all_inner_texts()[0].split(" ·")[0] == "-0.1176"  # dark: c first

    header = page.locator("#metrics thead th", has_text="pref. acc.").locator("button")
    header.click()
    assert column_values(page, "#metrics", 0) == ["test-dark", "test-bright"]
    header.click()
    assert column_values(page, "#metrics", 0) == ["test-bright", "test-dark"]

    # Thumbnails are made once: a second run reuses every file.
    mtimes = [path.stat().st_mtime_ns for path in thumbs]
    assert run_cli(["eval", "--data", str(root / "test.json"), "--scorers", "test-bright", "-o", str(out),
                    "--bootstrap", "20", "-q"]) == 0
    assert [path.stat().st_mtime_ns for path in sorted((out / "thumbs").iterdir())] == mtimes


def test_table_and_benchmark_pages_render_sort_and_stay_offline(tmp_path, browser, counting_scorers):  # noqa: F811
    from eval.test_generator_benchmark import make_generations

    pick = write_pickapic(tmp_path / "pick", split="test_unique")
    out = tmp_path / "table"
    assert run_cli(["eval", "--benchmarks", "pickapic-test-unique", "--benchmark-data",
                    f"pickapic-test-unique={pick}", "--scorers", "test-bright,test-dark", "-o", str(out),
                    "--bootstrap", "20", "-q"]) == 0
    page, requests, errors = open_page(browser, out / "table.html")
    assert_offline_and_clean(page, requests, errors)
    assert page.locator("h2", has_text="pickapic-test-unique").count() == 1
    assert page.get_by_text("test-dark: 3 pairs against the humans").count() == 1
    page.locator("#accuracy thead th", has_text="pickapic-test-unique").locator("button").click()
    assert column_values(page, "#accuracy", 0) == ["test-dark", "test-bright"]

    make_generations(tmp_path)
    (tmp_path / "prompts.json").write_text(json.dumps([{"id": 0, "prompt": MARKUP}, {"id": 1, "prompt": "plain"}]))
    bench = tmp_path / "bench"
    assert run_cli(["benchmark", "--prompts", str(tmp_path / "prompts.json"), "--generations", str(tmp_path / "gens"),
                    "--scorers", "test-bright,test-dark", "-o", str(bench), "--bootstrap", "20", "-q"]) == 0
    page, requests, errors = open_page(browser, bench / "benchmark.html")
    assert_offline_and_clean(page, requests, errors)
    assert page.locator("table.grid").count() == 3 and page.get_by_text(MARKUP, exact=True).count() == 3
    page.locator("#generators thead th", has_text="test-bright").locator("button").click()
    assert column_values(page, "#generators", 0) == ["g-dark", "g-mid", "g-bright"]
    grid = page.locator("table.grid").first
    grid.locator("thead th", has_text="test-dark").locator("button").click()
    values = grid.locator("tbody tr").evaluate_all("rows => rows.map(row => parseFloat(row.cells[4].dataset.sort))")
    assert values == sorted(values) and len(values) == 2
