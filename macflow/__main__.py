import sys

from macflow.errors import exit_on_input_error


def main() -> None:
    """``python -m macflow export ...`` (not a LightningCLI subcommand) or the LightningCLI (fit, validate, ...).

    An :class:`~macflow.errors.InputError` ends the command with its one-line message and exit status 2."""
    if len(sys.argv) > 1 and sys.argv[1] == "export":
        from macflow.export import main as export_main

        exit_on_input_error(lambda: export_main(sys.argv[2:]))
    else:
        from macflow.cli import main as cli_main

        exit_on_input_error(cli_main)


if __name__ == "__main__":
    main()
