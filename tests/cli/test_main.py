import pytest

from keras_kd.cli import main


@pytest.mark.parametrize("command, text", [
    ("demo", "--quick"), ("distill", "--config"), ("report", "--models"),
])
def test_help_explains_each_command(command, text, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main([command, "--help"])
    assert exit_info.value.code == 0
    assert text in capsys.readouterr().out


def test_top_level_help_lists_commands(capsys):
    assert main.main([]) == 2
    out = capsys.readouterr().out
    for command in ("demo", "distill", "report"):
        assert command in out
