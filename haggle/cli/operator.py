"""`haggle operator public-key`: the key services must trust for this operator's signed messages."""

from __future__ import annotations

import typer

app = typer.Typer(help="The operator's signing key.", no_args_is_help=True)


@app.command("public-key")
def public_key() -> None:
    """Print the operator's Ed25519 public key (made on first use, in the state folder)."""
    from haggle.runtime.operators import private_key

    print(private_key().public)
