"""`sirena web`: the console and the REST API, served by gunicorn (behind a TLS proxy in production)."""

from __future__ import annotations

import click

from alerting.interfaces.cli.app import Context, cli, pass_ctx


@cli.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--tile-url", default=None,
              help="Base-map tile URL template (default: SIRENA_TILE_URL); none: zones on a plain background.")
@click.option("--proxy-hops", default=0, show_default=True, type=click.IntRange(0, 5),
              help="Reverse proxies in front whose X-Forwarded-* headers are trusted (TLS ends there).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Server processes (gunicorn).")
@click.option("--threads", default=32, show_default=True, type=click.IntRange(2, 1000),
              help="Threads per process: each open alert page holds one for its long poll (up to 20 s).")
@click.option("--dev", is_flag=True, help="Werkzeug's development server instead (one process, for development).")
@pass_ctx
def web(ctx: Context, host: str, port: int, tile_url: str | None, proxy_hops: int, workers: int, threads: int,
        dev: bool) -> None:
    """Serve the operator console and the REST API (gunicorn; --dev: Werkzeug).

    SIGTERM stops it cleanly (exit 0): it stops accepting, finishes the requests in flight (an alert
    page's long poll answers at once) within 10 s, then exits. SIGINT does not wait for them."""
    if host not in ("127.0.0.1", "::1", "localhost") and not proxy_hops:
        click.echo("warning: plain HTTP on a network address; sessions and codes cross the wire in clear. "
                   "Put a TLS proxy in front and pass --proxy-hops 1.", err=True)
    if dev:
        from werkzeug.serving import run_simple

        from alerting.interfaces.web.server import build_app

        app = build_app(ctx.settings, tile_url=tile_url, proxy_hops=proxy_hops)  # intake config: settings.intake
        click.echo(f"Sirena console on http://{host}:{port}/ (development server; Ctrl-C stops it)")
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
        return
    from alerting.interfaces.web.server import serve

    click.echo(f"Sirena console on http://{host}:{port}/ ({workers} processes x {threads} threads; "
               "SIGTERM or Ctrl-C stops it)")
    serve(ctx.settings, host=host, port=port, workers=workers, threads=threads, tile_url=tile_url,
          proxy_hops=proxy_hops)
