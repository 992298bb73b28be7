import argparse
import json

from imreward.annotate.cli import main, register


def test_register_adds_the_annotate_commands():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["annotate", "serve", "--db", "sqlite:///x.db", "--media", "m"])
    assert (args.annotate_command, args.db, str(args.media), args.port) == ("serve", "sqlite:///x.db", "m", 8000)


def test_import_create_user_and_export_from_the_command_line(tmp_path, prompt_folders, monkeypatch, capsys):
    db, media = str(tmp_path / "cli.db"), str(tmp_path / "media")
    main(["annotate", "import", str(prompt_folders), "--db", db, "--media", media])
    assert "imported 3 prompts" in capsys.readouterr().out
    monkeypatch.setenv("IMREWARD_ANNOTATE_PASSWORD", "long enough secret")
    main(["annotate", "create-user", "ann", "--role", "annotator", "--db", db])
    assert "created annotator ann" in capsys.readouterr().out
    main(["annotate", "export", str(tmp_path / "out"), "--db", db, "--media", media, "--split", "validation"])
    assert "exported 0 prompts" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "validation.json").read_text()) == []
    assert (tmp_path / "out" / "metadata-validation.parquet").is_file()
