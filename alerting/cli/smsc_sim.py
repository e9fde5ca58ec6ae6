"""`sirena smsc-sim`: run the SMPP simulator in the foreground until interrupted."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
from pathlib import Path

import click

from alerting.cli.app import cli
from alerting.errors import InvalidInput


@cli.command("smsc-sim")
@click.option("--port", type=int, default=None,
              help="Port of the single default carrier (with --config: of the first carrier). 0 = any free port.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML file listing carriers, receipts, handsets and faults.")
@click.option("--control-port", type=int, default=None, help="JSON-lines control port (0 = any free port).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every PDU as a JSON line to this file.")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--system-id", default="sirena", show_default=True, help="Account of the default carrier.")
@click.option("--password", default="sirena", show_default=True, help="Password of the default carrier.")
@click.option("--no-records", is_flag=True, help="Keep nothing in memory (long runs, benchmarks).")
def smsc_sim(port: int | None, config_file: Path | None, control_port: int | None, log_path: Path | None,
             host: str | None, system_id: str, password: str, no_records: bool) -> None:
    """Run the SMPP 3.4 SMSC simulator until Ctrl-C or SIGTERM.

    Prints one JSON line when listening: {"smsc_sim": "listening", "ports": {...}, "control_port": ...}.
    """
    from broadcast.smsc_sim import CarrierConfig, SimConfig, Simulator, load_config

    if config_file is None and port is None:
        raise InvalidInput("give --port or --config", fields={"--port": "missing"})
    if config_file is not None:
        # The entry point resolves password_env against this process's environment.
        config = load_config(config_file, env=dict(os.environ))
        if port is not None:
            config.carriers[0].port = port
    else:
        assert port is not None
        config = SimConfig(carriers=[CarrierConfig(name="default", port=port, system_id=system_id,
                                                   password=password)])
    if control_port is not None:
        config.control_port = control_port
    if log_path is not None:
        config.log_path = log_path
    if host is not None:
        config.host = host
    if no_records:
        config.keep_records = False
    sim = Simulator(config)

    async def run() -> None:
        await sim.start()
        loop = asyncio.get_running_loop()

        def freeze_gc() -> None:
            # Kept records are long-lived: without this the cyclic GC rescans them all and halves
            # submit_sm/s once a few hundred thousand are held. This process owns its GC policy.
            gc.freeze()
            loop.call_later(0.5, freeze_gc)

        if config.keep_records:
            freeze_gc()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: loop.create_task(sim.aclose()))
        click.echo(json.dumps({"smsc_sim": "listening", "host": config.host, "ports": sim.ports(),
                               "control_port": sim.control_port}), nl=True)
        await sim.serve_forever()

    asyncio.run(run())
