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


def test_a_scorer_is_keyed_by_its_files_content_hashed_once(tmp_path, monkeypatch):
    import hashlib

    judge = tmp_path / "judge.json"
    judge.write_text('{"model": "a"}')
    hashed = []
    original = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *args: hashed.append(args) or original(*args))
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        first = cache.scorer_key(f"openai-judge:{judge}")
        assert first.startswith(f"openai-judge:{judge}#")
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        hashed.clear()
        assert cache.scorer_key(f"openai-judge:{judge}") == first
        assert len(hashed) == 1  # the key's own digest: the unchanged file was not read again
    judge.write_text('{"model": "b"}')
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        assert cache.scorer_key(f"openai-judge:{judge}") != first
    with ScoreCache(tmp_path / "a.sqlite", dtype="float16") as half, ScoreCache(tmp_path / "b.sqlite") as default:
        assert half.scorer_key("some-hub-model") != default.scorer_key("some-hub-model")
