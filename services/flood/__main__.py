"""``python -m services.flood``: the flood without the main CLI (same options as ``breakwater flood``)."""

from __future__ import annotations

import typer

from services.cli.flood import flood

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(flood)

if __name__ == "__main__":
    app()
