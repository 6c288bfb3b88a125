"""Every option of every subcommand says what it does, and its default."""

import argparse

import pytest

from actlab.cli import build_parser, main


def _commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield prefix + (name,), child
                yield from _commands(child, prefix + (name,))


COMMANDS = dict(_commands(build_parser()))


@pytest.mark.parametrize("command", sorted(" ".join(c) for c in COMMANDS))
def test_every_argument_has_a_help_text_and_help_shows_defaults(command, capsys):
    parser = COMMANDS[tuple(command.split())]
    missing = [a.option_strings or a.dest for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not a.help]
    assert not missing, f"actlab {command}: no help for {missing}"
    assert parser.formatter_class is argparse.ArgumentDefaultsHelpFormatter
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for a in parser._actions:
        if a.option_strings and a.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {a.default})" in text or f"(default: {a.default!r})" in text or \
                f"(default: {' '.join(map(str, a.default)) if isinstance(a.default, list) else a.default}" in text \
                or "default" in a.help, f"actlab {command} {a.option_strings}: default not shown"


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"actlab {version('actlab')}"


def test_list_activations_shows_each_familys_options_and_defaults(capsys):
    assert main(["list", "activations"]) == 0
    out = capsys.readouterr().out
    assert "spline(" in out and "knots=" in out and "slaf(" in out and "degree=" in out
