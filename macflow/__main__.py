import sys


def main() -> None:
    """``python -m macflow export ...`` (not a LightningCLI subcommand) or the LightningCLI (fit, validate, ...)."""
    if len(sys.argv) > 1 and sys.argv[1] == "export":
        from macflow.export import main as export_main

        export_main(sys.argv[2:])
    else:
        from macflow.cli import main as cli_main

        cli_main()


if __name__ == "__main__":
    main()
