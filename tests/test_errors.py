"""``exit_on_input_error``: an InputError, also one the config parser re-raised as its own error, is one line."""

from __future__ import annotations

import pytest

from macflow.errors import EXIT_INPUT_ERROR, InputError, exit_on_input_error


def test_an_input_error_wrapped_by_the_parser_still_exits_2_with_its_line(capsys):
    def instantiate():  # what jsonargparse does when a class it builds raises
        try:
            raise InputError("data.init_args.batch_size=0: must be a positive integer; set it to at least 1")
        except InputError:
            raise ValueError("Problem with given class_path 'macflow.datamodules.MPEDataModule'") from None

    with pytest.raises(SystemExit) as stop:
        exit_on_input_error(instantiate)
    assert stop.value.code == EXIT_INPUT_ERROR
    assert capsys.readouterr().err == ("macflow: error: data.init_args.batch_size=0: must be a positive integer; "
                                       "set it to at least 1\n")


def test_other_errors_keep_their_traceback():
    def broken():
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        exit_on_input_error(broken)
