"""`slmflow verify` and `slmflow verifier train|calibrate` as a small typer app, for CliRunner: the
real command functions, without the full CLI's start-up (Ray environment, settings callback)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from slmflow.cli.verify import calibrate_command, train_command, verify_command

app = typer.Typer()
app.command("verify")(verify_command)
verifier_app = typer.Typer()
verifier_app.command("train")(train_command)
verifier_app.command("calibrate")(calibrate_command)
app.add_typer(verifier_app, name="verifier")
runner = CliRunner()
