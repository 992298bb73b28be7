"""The README's synthetic-data recipe is what benchmarks/readme_recipe.py runs, and it fits the current CLI."""

import importlib.util
from pathlib import Path

from imreward.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("readme_recipe", ROOT / "benchmarks" / "readme_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_runs_the_readme_commands_and_they_parse():
    benchmark = load_benchmark()
    generate, train = benchmark.readme_recipe()
    assert generate[:2] == ["python", "scripts/make_synthetic_preferences.py"] and (ROOT / generate[1]).is_file()
    out_dir = generate[2]
    assert train[0] == "imreward"
    args = build_parser().parse_args(train[1:])
    assert args.command == "train"
    assert args.train == args.val == args.test == out_dir
    assert args.model_config == f"{out_dir}/model_config.json"  # the file the script writes beside the data
    readme = (ROOT / "README.md").read_text()
    for command in (generate, train):
        assert " ".join(command) in " ".join(readme.replace("\\\n", " ").split())


def test_the_benchmark_only_adds_the_options_asked_for(tmp_path):
    benchmark = load_benchmark()
    readme = tmp_path / "README.md"
    readme.write_text("text\n```bash\npython scripts/make_synthetic_preferences.py d  # data\n"
                      "imreward train --train d \\\n    --lr 1e-4\n```\n")
    generate, train = benchmark.readme_recipe(readme)
    assert train == ["imreward", "train", "--train", "d", "--lr", "1e-4"]
    assert benchmark.runnable(generate)[1:] == [str(ROOT / "scripts/make_synthetic_preferences.py"), "d"]
    assert benchmark.runnable(train)[1:3] == ["-m", "imreward.cli"]
