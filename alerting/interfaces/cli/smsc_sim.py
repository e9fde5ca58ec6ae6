"""`sirena smsc-sim`: run the SMPP simulator in the foreground until interrupted."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import time
from pathlib import Path

import click

from alerting.base.errors import InvalidInput
from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.group("smsc-sim", invoke_without_command=True)
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
@click.pass_context
def smsc_sim(ctx: click.Context, port: int | None, config_file: Path | None, control_port: int | None,
             log_path: Path | None, host: str | None, system_id: str, password: str, no_records: bool) -> None:
    """Run the SMPP 3.4 SMSC simulator until Ctrl-C or SIGTERM (`sirena smsc-sim reply --help`: a
    simulated handset's reply).

    Prints one JSON line when listening: {"smsc_sim": "listening", "ports": {...}, "control_port": ...}.
    An account SMPP cannot carry (a password over 8 characters) stops it at start, naming the variable.
    """
    from smsc_sim import CarrierConfig, SimConfig, Simulator, load_config

    if ctx.invoked_subcommand is not None:
        return
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
                                                   password=password, pw_source="--password")])
        config.validate()
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


@smsc_sim.command("reply")
@click.option("--from", "handset", required=True, help="The simulated handset's number, e.g. 5491155550000.")
@click.option("--to", "to", required=True,
              help="Our sender it replies to: its name in the carriers file (BOMBEROS) or its address (5555).")
@click.argument("text")
@click.option("--carrier", default=None,
              help="The simulated carrier it comes through (default: the first that carries the sender).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the simulator runs.")
@click.option("--control-port", type=int, default=None,
              help="The simulator's control port (default: --config's control_port, else 2780, the demo's).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The simulator's TOML file (for its control_port).")
@click.option("--wait", "wait_s", type=click.FloatRange(0, 120), default=0, show_default=True,
              help="Seconds to wait for Sirena to read the reply, then say what it made of it.")
@json_option
@pass_ctx
def reply(ctx: Context, handset: str, to: str, text: str, carrier: str | None, host: str, control_port: int | None,
          config_file: Path | None, wait_s: float, as_json: bool) -> None:
    """A simulated handset replies: TEXT from --from to --to, through a running simulator.

    Example: sirena smsc-sim reply --from 5491155550000 --to BOMBEROS "BOMBEROS ACK 4821" --wait 10
    """
    from broadcast.carriers import load_carriers
    from smsc_sim.control import ControlClient

    source = handset.strip().lstrip("+")
    if not source.isdigit() or not 5 <= len(source) <= 15:
        raise InvalidInput(f"--from: expected a phone number such as 5491155550000, got {handset!r}",
                           fields={"--from": "digits, with or without +"})
    config = load_carriers(ctx.settings.carriers_file, None)  # routes only: no password needed
    sender = config.senders.get(to)
    if sender is None and not to.lstrip("+").isdigit():
        known = ", ".join(sorted(config.senders))
        raise InvalidInput(f"--to: {to!r} is no sender of {config.source} (known: {known}) nor an address",
                           fields={"--to": "a sender name or an address"})
    address = sender.address if sender is not None else to.lstrip("+")
    if carrier is None:
        carriers = config.carriers_for(sender.name) if sender is not None else ()
        if not carriers:
            raise InvalidInput(f"--carrier: say which simulated carrier delivers a reply to {to}",
                               fields={"--carrier": "required when --to is not a sender of the carriers file"})
        carrier = carriers[0].name
    port = control_port if control_port is not None else _control_port(config_file)
    sent_at = time.time()
    try:
        with ControlClient(host, port) as control:
            control.request("send_mo", carrier=carrier, source=source, dest=address, text=text)
    except OSError as exc:
        raise InvalidInput(f"--control-port: no simulator answers on {host}:{port} ({exc.strerror or exc})",
                           fields={"--control-port": "is `sirena smsc-sim --config …` running?"}) from None
    data: dict[str, object] = {"sent": True, "from": source, "to": address, "sender": sender.name if sender else None,
                               "carrier": carrier, "text": text}
    human = f"reply sent: {source} → {address}{f' ({sender.name})' if sender else ''} through {carrier}: {text!r}"
    if wait_s:
        ctx.db()
        read = _wait_for_reading(f"+{source}", text, sent_at, wait_s)
        data["reading"] = read
        human += "\n" + (_describe(read) if read else f"Sirena has not read it within {wait_s:g} s (are the "
                                                           "gateway workers running and bound to this carrier?)")
    emit(as_json, data, human)


def _control_port(config_file: Path | None) -> int:
    """The control port of the simulator's file, else the demo's (2780)."""
    if config_file is None:
        return 2780
    import tomllib

    try:
        value = tomllib.loads(config_file.read_text(encoding="utf-8")).get("control_port")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"--config: cannot read {config_file}: {exc}", fields={"--config": "unreadable"}) from None
    if not isinstance(value, int):
        raise InvalidInput(f"--config: {config_file} names no control_port; give --control-port",
                           fields={"--control-port": "required"})
    return value


def _wait_for_reading(msisdn: str, text: str, sent_at: float, wait_s: float) -> dict[str, object] | None:
    """What Sirena made of the reply (the newest from `msisdn` with `text` since `sent_at`), or None."""
    from sqlalchemy import text as sql

    from alerting.base.db import transaction

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with transaction() as session:
            row = session.execute(sql("""
                SELECT r.meaning, r.unmatched_reason, a.reference FROM replies r
                  LEFT JOIN alerts a ON a.id = r.alert_id
                 WHERE r.msisdn = :n AND r.text = :t AND r.created_at >= to_timestamp(:at) - interval '2 seconds'
                 ORDER BY r.id DESC LIMIT 1"""), {"n": msisdn, "t": text, "at": sent_at}).mappings().one_or_none()
            if row is None:  # ALTA/JOIN and a pending registration's SI are registrations, not replies
                outcome = session.execute(sql("""
                    SELECT outcome FROM inbound_messages
                     WHERE kind = 'mo' AND source_addr = :src AND text = :t AND processed_at IS NOT NULL
                       AND outcome LIKE 'registration%' AND received_at >= to_timestamp(:at) - interval '2 seconds'
                     ORDER BY id DESC LIMIT 1"""), {"src": msisdn.lstrip("+"), "t": text, "at": sent_at}).scalar()
                if outcome is not None:
                    return {"registration": outcome.removeprefix("registration_")}
        if row is not None:
            return dict(row)
        time.sleep(0.3)
    return None


def _describe(read: dict[str, object]) -> str:
    if "registration" in read:
        return f"Sirena took it as a self-registration: {read['registration']}"
    if read["reference"]:
        return f"Sirena read it as {read['meaning']} for alert {read['reference']}"
    return f"Sirena read it as {read['meaning']}, matched to no alert ({read['unmatched_reason']})"
