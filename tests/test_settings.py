"""The server's settings are declared once: `lima serve`'s flags and the docs' settings table come from them."""

from pathlib import Path

import pytest

from lima.cli.serve import serve_parser
from server.core.settings import ServerSettings, flag_fields, table

SERVING_DOC = Path(__file__).resolve().parent.parent / "docs" / "serving.md"


def test_the_docs_table_is_the_one_the_settings_make() -> None:
    assert table() in SERVING_DOC.read_text(), \
        "docs/serving.md is out of date: paste the output of `python -m server.core.settings`"


def test_every_flag_of_lima_serve_sets_its_setting() -> None:
    parser = serve_parser()
    values = {"port": "9001", "max_choices": "3", "shutdown_timeout_seconds": "2.5", "redis_dir": "/srv/redis",
              "uvicorn_log_level": "debug", "rate_limit_burst": "7"}
    flags = {action.dest: action.option_strings[0] for action in parser._actions if action.dest in flag_fields()}
    assert set(flags) == set(flag_fields())  # each flag-carrying setting has exactly one flag
    args = parser.parse_args([item for name, value in values.items() for item in (flags[name], value)])
    settings = ServerSettings(**{name: getattr(args, name) for name in values})
    assert (settings.port, settings.max_choices, settings.shutdown_timeout_seconds, str(settings.redis_dir),
            settings.uvicorn_log_level, settings.rate_limit_burst) == (9001, 3, 2.5, "/srv/redis", "debug", 7)
    assert flags["uvicorn_log_level"] == "--uvicorn-log-level"  # vLLM has its own --log-level


def test_environment_names_follow_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMA_HISTORY_MAX_ITEMS", "40")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("LIMA_LOG_LEVEL", "warning")
    settings = ServerSettings()
    assert settings.history_max_items == 40 and settings.redis_url == "redis://cache:6379/2"
    assert settings.uvicorn_log_level == "warning"
    assert "`REDIS_URL` or `LIMA_REDIS_URL`" in table() and "`LIMA_HISTORY_MAX_ITEMS`" in table()


def test_auto_tool_choice_needs_a_parser_vllm_knows(capsys: pytest.CaptureFixture[str]) -> None:
    from lima.cli import main

    auto = "--enable-auto-tool-choice"
    for argv, words in (([auto], "needs --tool-call-parser"),
                        ([auto, "--tool-call-parser", "nope"], "unknown --tool-call-parser 'nope'")):
        with pytest.raises(SystemExit) as stopped:
            main(["serve", *argv])
        assert stopped.value.code == 2 and words in capsys.readouterr().err
