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


def test_set_password_changes_the_password_and_refuses_unknown_accounts(tmp_path, monkeypatch, capsys):
    import pytest

    from imreward.annotate.accounts import authenticate
    from imreward.annotate.api import open_database

    db = str(tmp_path / "cli.db")
    monkeypatch.setenv("IMREWARD_ANNOTATE_PASSWORD", "first long password")
    main(["annotate", "create-user", "ann", "--db", db])
    monkeypatch.setenv("IMREWARD_ANNOTATE_PASSWORD", "second long password")
    main(["annotate", "set-password", "ann", "--db", db])
    assert "its sessions have ended" in capsys.readouterr().out
    with open_database(db)() as session:
        assert authenticate(session, "ann", "second long password") is not None
        assert authenticate(session, "ann", "first long password") is None
    with pytest.raises(SystemExit, match="no account named 'nobody'"):
        main(["annotate", "set-password", "nobody", "--db", db])


def test_serve_trusts_proxy_headers_only_when_told(tmp_path, monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    base = ["annotate", "serve", "--db", str(tmp_path / "s.db"), "--media", str(tmp_path / "m")]
    main(base)
    main([*base, "--forwarded-allow-ips", "10.0.0.2", "--session-hours", "2"])
    assert (calls[0]["proxy_headers"], calls[0]["forwarded_allow_ips"]) == (False, None)
    assert (calls[1]["proxy_headers"], calls[1]["forwarded_allow_ips"]) == (True, "10.0.0.2")
