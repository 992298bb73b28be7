"""The OpenAI-compatible judge against a local fake chat-completions server (tests/fake_judge.py):
the request it sends, each scoring rule, malformed answers, rate limits, server errors, timeouts,
concurrency, the API key, and the judge used by name through the CLI, score-dataset and the server."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time

import numpy as np
import pytest
import uvicorn
from PIL import Image
from starlette.testclient import TestClient

import imreward
from fake_judge import FakeJudge, Reply, chat_reply, question_of
from imreward.cli import main as cli_main
from imreward.errors import JudgeAnswerError, JudgeRequestError, ScorerOptionError
from imreward.judges.templates import UNIFIEDREWARD_PAIRWISE, VQASCORE_QUESTION

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.5, "timeout_s": 5.0}


def image(seed: int, size=(24, 16)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def judge_for(server: FakeJudge, **options):
    return imreward.load_score("openai-judge", base_url=server.url, model="judge-model", **(FAST | options))


def by_prompt(answers: dict[str, Reply]):
    """A responder answering each question by the prompt it contains."""
    return lambda body, number: next(reply for prompt, reply in answers.items() if f'"{prompt}"' in question_of(body))


def test_the_request_carries_the_image_the_question_and_greedy_logprob_options():
    picture = image(0)
    with FakeJudge(lambda body, n: chat_reply("Yes", {"Yes": 0.6, "No": 0.2})) as server:
        judge = judge_for(server, system="Be strict.", extra_body={"top_k": 1})
        assert judge.score("a red fox", picture) == pytest.approx(0.75, abs=1e-9)
    body = server.bodies[0]
    assert body["model"] == "judge-model" and body["temperature"] == 0.0 and body["max_tokens"] == 1
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["top_k"] == 1
    system, user = body["messages"]
    assert system == {"role": "system", "content": "Be strict."} and user["role"] == "user"
    sent_image, question = user["content"]
    assert question == {"type": "text", "text": VQASCORE_QUESTION.replace("{prompt}", "a red fox")}
    prefix, encoded = sent_image["image_url"]["url"].split(",", 1)
    assert sent_image["type"] == "image_url" and prefix == "data:image/png;base64"
    decoded = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert np.array_equal(np.asarray(decoded), np.asarray(picture))  # lossless, pixel for pixel
    assert "authorization" not in {name.lower() for name in server.headers[0]}


def test_each_rule_reads_its_score_from_the_answer():
    replies = {"fox": chat_reply(" yes", {" yes": 0.3, "Yes": 0.3, "NO": 0.2, "maybe": 0.1}),
               "owl": chat_reply("Looks fine.\nScore: 7.5 / 10"),
               "cat": chat_reply("cat (object): 1\nFinal Score: 3.5\nFinal Score: 4"),
               "acs": chat_reply("Alignment Score (1-5): 2.5\nCoherence Score (1-5): 3\nStyle Score (1-5): 4.25")}
    with FakeJudge(by_prompt(replies)) as server:
        assert judge_for(server).score("fox", image(0)) == pytest.approx(0.75)
        assert judge_for(server, rule="p-yes").score("fox", image(0)) == pytest.approx(0.6)
        number = judge_for(server, rule="number", template='Rate "{prompt}" from 0 to 10.')
        assert number.score("owl", image(0)) == 7.5
        assert server.bodies[-1]["max_tokens"] == 1024 and "logprobs" not in server.bodies[-1]
        unified = judge_for(server, rule="unifiedreward", template='UnifiedReward "{prompt}"')
        assert unified.score("cat", image(0)) == 4.0  # after the last "Final Score:"
        acs = judge_for(server, rule="number", template='"{prompt}"', pattern=r"Alignment Score \(1-5\):\s*([\d.]+)")
        judgement = acs.judge("acs", image(0))
        assert judgement.score == 2.5 and judgement.details == {"alignment": 2.5, "coherence": 3.0, "style": 4.25}


def test_a_malformed_answer_fails_its_item_with_the_raw_text():
    replies = {"good": chat_reply("Yes", {"Yes": 0.9, "No": 0.1}),
               "chatty": chat_reply("I cannot tell.", {"I": 0.7, "Sure": 0.2}),
               "nologprobs": chat_reply("Yes"),
               "garbage": Reply(raw="<html>oops</html>"),
               "nochoices": Reply(body={"object": "error", "message": "model overloaded"})}
    with FakeJudge(by_prompt(replies)) as server:
        judge = judge_for(server)
        errors = {}
        scores = judge.score_batch(list(replies), [image(i) for i in range(5)],
                                   on_error=lambda index, error: errors.update({index: error}))
        assert scores[0] == pytest.approx(0.9) and scores[1:] == [None] * 4
        assert isinstance(errors[1], JudgeAnswerError) and errors[1].raw == "I cannot tell."
        assert "'I': " in str(errors[1]) and "I cannot tell." in str(errors[1])
        assert "top_logprobs" in str(errors[2]) and isinstance(errors[3], JudgeRequestError)
        assert "<html>oops</html>" in str(errors[3]) and "model overloaded" in str(errors[4])
        with pytest.raises(JudgeAnswerError, match="I cannot tell"):
            judge.score("chatty", image(0))
        number = judge_for(server, rule="unifiedreward")
        with pytest.raises(JudgeAnswerError, match="no number after 'Final Score:'.*Yes"):
            number.score("good", image(0))


def test_rate_limits_and_server_errors_are_retried_then_reported():
    def flaky(body, number):
        if number == 0:
            return Reply(429, {"error": "slow down"}, {"Retry-After": "0.2"})
        if number == 1:
            return Reply(503, {"error": "warming up"})
        return chat_reply("Yes", {"Yes": 1.0})

    with FakeJudge(flaky) as server:
        started = time.perf_counter()
        assert judge_for(server).score("a fox", image(0)) == 1.0
        assert time.perf_counter() - started >= 0.2 and len(server.bodies) == 3  # waited as Retry-After asked
    with FakeJudge(lambda body, n: Reply(500, {"error": "boom"})) as server:
        with pytest.raises(JudgeRequestError, match=r"failed 3 time\(s\); last: HTTP 500.*boom"):
            judge_for(server, max_retries=2).score("a fox", image(0))
        assert len(server.bodies) == 3
    with FakeJudge(lambda body, n: Reply(400, {"error": "bad image"})) as server:
        with pytest.raises(JudgeRequestError, match="refused the request: HTTP 400.*bad image"):
            judge_for(server).score("a fox", image(0))
        assert len(server.bodies) == 1  # a client error is not retried


def test_a_slow_server_times_out_per_item():
    def slow_for_owls(body, number):
        return chat_reply("Yes", {"Yes": 1.0}, delay_s=2.0 if '"owl"' in question_of(body) else 0.0)

    with FakeJudge(slow_for_owls) as server:
        errors = {}
        scores = judge_for(server, timeout_s=0.3, max_retries=1).score_batch(
            ["fox", "owl"], [image(0), image(1)], on_error=lambda index, error: errors.update({index: error}))
        assert scores == [1.0, None] and list(errors) == [1]
        assert "timed out after 0.3 s" in str(errors[1]) and "failed 2 time(s)" in str(errors[1])


def test_requests_in_flight_never_exceed_the_concurrency():
    in_flight, peak, lock = [0], [0], threading.Lock()

    def counting(body, number):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return chat_reply("Yes", {"Yes": 0.5, "No": 0.5})

    with FakeJudge(counting) as server:
        assert judge_for(server, concurrency=3).score_batch("a fox", [image(i) for i in range(9)]) == [0.5] * 9
    assert peak[0] == 3


def test_the_api_key_comes_from_the_environment_and_is_never_shown(monkeypatch, caplog):
    secret = "sk-test-0123456789"
    monkeypatch.setenv("JUDGE_KEY", secret)
    caplog.set_level(logging.DEBUG)
    replies = iter([Reply(429, {"error": "rate"}, {"Retry-After": "0"}), Reply(401, {"error": "bad key"})])
    with FakeJudge(lambda body, n: next(replies)) as server:
        judge = judge_for(server, api_key_env="JUDGE_KEY")
        with pytest.raises(JudgeRequestError) as raised:
            judge.score("a fox", image(0))
    assert server.headers[0]["Authorization"] == f"Bearer {secret}"
    assert secret not in str(raised.value) and secret not in repr(judge) and secret not in caplog.text
    assert secret not in json.dumps(judge.config.__dict__)
    monkeypatch.delenv("JUDGE_KEY")
    with pytest.raises(ValueError, match="JUDGE_KEY .* is not set"):
        imreward.load_score("openai-judge", base_url="http://127.0.0.1:9/v1", model="m", api_key_env="JUDGE_KEY")


def test_pairwise_compare_reads_the_verdict():
    replies = iter([chat_reply("Image 1 is not as sharp. Image 2 is better."), chat_reply("Both images are equally good."),
                    chat_reply("No idea.")])
    with FakeJudge(lambda body, n: next(replies)) as server:
        judge = judge_for(server)
        assert judge.compare("a fox", image(0), image(1)) == 2
        assert judge.compare("a fox", image(0), image(1)) == 0
        with pytest.raises(JudgeAnswerError, match="no verdict.*No idea"):
            judge.compare("a fox", image(0), image(1))
    content = server.bodies[0]["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "image_url", "text"]
    assert content[2]["text"] == UNIFIEDREWARD_PAIRWISE.replace("{prompt}", "a fox")


def test_bad_configs_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="needs a config with base_url and model"):
        imreward.load_score("openai-judge")
    with pytest.raises(ScorerOptionError, match="does not take the option.*max_length"):
        imreward.load_scorer("openai-judge", base_url="http://x/v1", model="m", max_length=35)
    assert imreward.load_scorer("openai-judge", base_url="http://x/v1", model="m", dtype="bfloat16", device="cuda")
    (tmp_path / "judge.json").write_text(json.dumps({"base_url": "http://x/v1", "model": "m", "rulez": "number"}))
    with pytest.raises(ValueError, match="unknown judge option.*rulez"):
        imreward.load_scorer(f"openai-judge:{tmp_path / 'judge.json'}")
    with pytest.raises(ValueError, match="rule must be one of"):
        imreward.load_score("openai-judge", base_url="http://x/v1", model="m", rule="vibes")
    with pytest.raises(ValueError, match="placeholder"):
        imreward.load_score("openai-judge", base_url="http://x/v1", model="m", template="no slot").score("a", image(0))


def test_usable_by_name_in_score_score_dataset_and_serve(tmp_path, capsys, monkeypatch):
    scores = {"fox": 0.8, "owl": 0.25}
    respond = by_prompt({p: chat_reply("Yes", {"Yes": s, "No": 1 - s}) for p, s in scores.items()}
                        | {"bad": chat_reply("Hmm", {"Hmm": 1.0})})
    for index in range(3):
        image(index).save(tmp_path / f"{index}.png")
    with FakeJudge(respond) as server:
        config = tmp_path / "judge.json"
        config.write_text(json.dumps({"base_url": server.url, "model": "judge-model"} | FAST))
        spec = f"openai-judge:{config}"
        manifest = tmp_path / "pairs.jsonl"
        manifest.write_text("".join(json.dumps({"prompt": p, "image": str(tmp_path / f"{i}.png")}) + "\n"
                                    for i, p in enumerate(["fox", "owl", "bad"])))
        assert cli_main(["score", "--model", spec, "--input", str(manifest), "-q"]) == 1  # one item failed
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [row["score"] for row in rows] == pytest.approx([0.8, 0.25, None])
        assert "Hmm" in rows[2]["error"]
        output = tmp_path / "scores.jsonl"
        assert cli_main(["score-dataset", str(manifest), "--output", str(output), "--model", spec, "-q",
                         "--num-workers", "0"]) in (0, 1)
        dataset_rows = [json.loads(line) for line in output.read_text().splitlines()]
        assert [row["score"] for row in dataset_rows][:2] == pytest.approx([0.8, 0.25])
        assert dataset_rows[2]["score"] is None and "JudgeAnswerError" in dataset_rows[2]["error"]
        captured = {}
        monkeypatch.setattr(uvicorn, "run", lambda app, **options: captured.update(app=app))
        assert cli_main(["serve", "--model", spec, "--max-wait-ms", "20"]) == 0
        with TestClient(captured["app"]) as client:
            data = [base64.b64encode((tmp_path / f"{i}.png").read_bytes()).decode() for i in range(3)]
            response = client.post("/v1/score", json={"prompts": ["fox", "owl", "bad"], "images": data})
        assert response.status_code == 200, response.text
        assert response.json()["scores"][:2] == pytest.approx([0.8, 0.25]) and response.json()["scores"][2] is None


def test_an_rl_reward_uses_the_judge_by_name(tmp_path):
    from imreward.rl.reward import load_rl_reward

    respond = by_prompt({"fox": chat_reply("Yes", {"Yes": 0.8, "No": 0.2}),
                         "owl": chat_reply("No", {"Yes": 0.1, "No": 0.9})})
    with FakeJudge(respond) as server:
        config = tmp_path / "judge.json"
        config.write_text(json.dumps({"base_url": server.url, "model": "judge-model"} | FAST))
        pixels = [np.asarray(image(i, (32, 32))) for i in range(2)]  # uint8 [H, W, 3], as trainers pass them
        with load_rl_reward({"judge": 1.0}, models={"judge": f"openai-judge:{config}"}, device="cpu") as reward:
            assert reward.score(["fox", "owl"], pixels) == pytest.approx([0.8, 0.1])


def test_eval_reports_the_judge_and_caches_its_scores(tmp_path):
    from eval.test_cli import make_test_set, run_cli

    def brightness(body, number):  # P(Yes) = the grey image's level: the humans' order in make_test_set
        url = body["messages"][-1]["content"][0]["image_url"]["url"]
        level = float(np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))).mean()) / 255
        return chat_reply("Yes", {"Yes": level, "No": 1 - level})

    data, images, image_count = make_test_set(tmp_path)
    with FakeJudge(brightness) as server:
        config = tmp_path / "judge.json"
        config.write_text(json.dumps({"base_url": server.url, "model": "judge-model"} | FAST))
        command = ["eval", "--data", str(data), "--images", str(images), "-o", str(tmp_path / "report"),
                   "--bootstrap", "50", "-q", "--scorers", f"openai-judge:{config}"]
        assert run_cli(command) == 0
        report = json.loads((tmp_path / "report" / "report.json").read_text())
        assert report["metrics"][f"openai-judge:{config}"]["accuracy"]["value"] == 1.0
        requests = len(server.bodies)
        assert requests == image_count
        assert run_cli(command) == 0 and len(server.bodies) == requests  # the second run reads the cache
