import os

from imreward.eval.cache import ScoreCache

from eval.eval_helpers import write_gray_png


def test_scores_persist_per_scorer_image_and_prompt(tmp_path):
    image = write_gray_png(tmp_path / "a.png", 10)
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        cache.store("A", [image, image], ["p", "q"], [0.25, 0.5])
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        assert cache.lookup("A", [image, image, image], ["p", "q", "r"]) == [0.25, 0.5, None]
        assert cache.lookup("B", [image], ["p"]) == [None]
        assert (cache.hits, cache.misses) == (2, 2)


def test_a_rewritten_image_is_a_miss(tmp_path):
    image = write_gray_png(tmp_path / "a.png", 10)
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        cache.store("A", [image], ["p"], [1.0])
        write_gray_png(image, 200, size=30)
        stat = image.stat()
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert cache.lookup("A", [image], ["p"]) == [None]
