from bmo.cli.main import cli

cli()
