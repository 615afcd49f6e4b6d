import pytest

from harness.cli import main


def test_list_defenses_shows_config_fields(capsys):
    assert main(["list", "defenses"]) == 0
    out = capsys.readouterr().out
    assert "self-reminder" in out and "system_prompt: str" in out and "none" in out


def test_list_benchmarks_shows_sizes(capsys):
    assert main(["list", "benchmarks"]) == 0
    out = capsys.readouterr().out
    assert "xstest-safe" in out and "250" in out


def test_unknown_defense_exits_2_with_known_names(capsys):
    assert main(["run", "--defense", "mosr-typo"]) == 2
    err = capsys.readouterr().err
    assert "unknown defense 'mosr-typo'" in err and "self-reminder" in err


def test_bad_config_file_is_reported(tmp_path, capsys):
    bad = tmp_path / "c.toml"
    bad.write_text('defense = "none"\nlearning_rate = 3\n')
    assert main(["run", "--config", str(bad)]) == 2
    assert "unknown key(s) learning_rate" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [["--help"], ["run", "--help"], ["list", "--help"]])
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(cmd)
    assert exit_.value.code == 0 and "usage: harness" in capsys.readouterr().out
