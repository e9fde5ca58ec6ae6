"""`sirena web`: the console and the REST API on a local server (production: gunicorn, behind TLS)."""

from __future__ import annotations

import click

from alerting.cli.app import Context, cli, pass_ctx


@cli.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--tile-url", default=None,
              help="Base-map tile URL template (default: SIRENA_TILE_URL); none: zones on a plain background.")
@click.option("--proxy-hops", default=0, show_default=True, type=click.IntRange(0, 5),
              help="Reverse proxies in front whose X-Forwarded-* headers are trusted (TLS ends there).")
@pass_ctx
def web(ctx: Context, host: str, port: int, tile_url: str | None, proxy_hops: int) -> None:
    """Serve the operator console (and /api/v1 when installed)."""
    from werkzeug.serving import run_simple

    from alerting.web import create_app

    app = create_app(ctx.settings, tile_url=tile_url, proxy_hops=proxy_hops)  # intake config: settings.intake
    if host not in ("127.0.0.1", "::1", "localhost") and not proxy_hops:
        click.echo("warning: plain HTTP on a network address; sessions and codes cross the wire in clear. "
                   "Put a TLS proxy in front and pass --proxy-hops 1.", err=True)
    click.echo(f"Sirena console on http://{host}:{port}/ (Ctrl-C stops it)")
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
