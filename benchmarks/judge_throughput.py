"""Throughput of a vision-language judge in-process against the same judge through the
OpenAI-compatible client (``openai-judge``) and a local server, in one run.

The judge is the reduced VQAScore model of ``tests/golden/vqascore`` (Qwen2.5-VL, 2+2 layers): the
figures show the overheads around a model, not a real judge's speed. Rows:

- ``in-process``: ``VQAScore.score_batch`` (image loading, patches, one forward per image);
- ``openai-judge -> local server backed by the same model``: each image sent as a PNG data URL to a
  loopback server (``tests/fake_judge.py``) that decodes it, runs the same model and answers with
  ``top_logprobs`` as vLLM does; the client reads P(Yes) (rule ``p-yes``) at ``--concurrency`` 1 and N;
- ``openai-judge -> instant server``: a server that answers at once: the client's own cost per image
  (PNG encoding, base64, HTTP, JSON, parsing).

Usage: python benchmarks/judge_throughput.py [--images 12] [--size 512] [--concurrency 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import base64
import io
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from fake_judge import FakeJudge, chat_reply, question_of  # noqa: E402
from tiny_qwen_vl import write_model_folder  # noqa: E402

import imreward  # noqa: E402


def model_backed(vqa, top: int = 20):
    """A responder computing the first answer token's top logprobs with ``vqa``'s model, as a vLLM
    server would (and always listing "Yes" and "No", so that small probabilities are read too)."""
    yes_no = [vqa.chat.tokenizer.convert_tokens_to_ids(word) for word in ("Yes", "No")]  # one token each here

    def respond(body: dict, number: int):
        url = next(part["image_url"]["url"] for part in body["messages"][-1]["content"] if part["type"] == "image_url")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        with torch.inference_mode():
            logits = vqa.chat.first_answer_logits(question_of(body), [vqa.pil_preprocess(image)])
        logprobs = torch.log_softmax(logits, dim=-1)
        ids = list(dict.fromkeys(logprobs.topk(top).indices.tolist() + yes_no))
        tokens = {vqa.chat.tokenizer.decode([i]) or f"<unused {i}>": math.exp(float(logprobs[i])) for i in ids}
        return chat_reply(max(tokens, key=tokens.get), tokens)

    return respond


def timed(function, count: int) -> tuple[float, list]:
    start = time.perf_counter()
    result = function()
    return count / (time.perf_counter() - start), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = []
        for index in range(args.images):
            path = tmp / f"{index}.png"
            coarse = Image.fromarray(rng.integers(0, 256, (args.size // 8, args.size // 8, 3), dtype=np.uint8))
            coarse.resize((args.size, args.size), Image.BICUBIC).save(path)  # smooth, as photos compress
            images.append(path)
        vqa = imreward.load_score("VQAScore-Qwen2.5-VL-7B", device="cpu",
                                  checkpoint=write_model_folder("vqascore", tmp / "model"))
        prompt = "a red fox in the snow"
        vqa.score(prompt, images[0])  # warm-up
        rows = [("in-process VQAScore.score_batch", *timed(lambda: vqa.score_batch(prompt, images), len(images)))]
        with FakeJudge(model_backed(vqa)) as server:
            for concurrency in dict.fromkeys((1, args.concurrency)):
                judge = imreward.load_score("openai-judge", base_url=server.url, model="tiny", rule="p-yes",
                                            concurrency=concurrency)
                judge.score(prompt, images[0])
                rows.append((f"openai-judge -> local server, same model, concurrency {concurrency}",
                             *timed(lambda: judge.score_batch(prompt, images), len(images))))
                judge.close()
        with FakeJudge(lambda body, number: chat_reply("Yes", {"Yes": 0.7, "No": 0.3})) as server:
            judge = imreward.load_score("openai-judge", base_url=server.url, model="tiny", rule="p-yes",
                                        concurrency=args.concurrency)
            rows.append((f"openai-judge -> instant server, concurrency {args.concurrency}",
                         *timed(lambda: judge.score_batch(prompt, images), len(images))))
            judge.close()
    reference = rows[0][2]
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"{args.images} images of {args.size}x{args.size}")
    for name, rate, scores in rows:
        agreement = "" if name.startswith("openai-judge -> instant") else \
            f"  max |P(Yes) - in-process| {max(abs(a - b) for a, b in zip(scores, reference)):.1e}"
        print(f"{name:62s} {rate:7.2f} images/s{agreement}")


if __name__ == "__main__":
    main()
