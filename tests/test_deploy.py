"""The deployment files (deploy/, docs/deploy.md): every systemd unit runs a real `sirena` command
with options that exist, reads only real settings, and the simulator's file matches the carriers
file it stands in for. Parsed as systemd and click would, without starting anything."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from alerting.base.settings import Settings
from alerting.interfaces.cli import _load
from broadcast.carriers import load_carriers
from smsc_sim import load_config

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
ENV_EXAMPLE = ROOT / "deploy" / "sirena.env.example"


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as systemd reads it: section → key → values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path.name}: not a key=value line: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def example_env() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {k: v for k, v in pairs}


def resolve(args: list[str]) -> tuple[click.Command, list[str]]:
    """The click command `args` names (sub-groups walked) and the arguments left for it."""
    command: click.Command = _load()
    while isinstance(command, click.Group) and args and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    return command, args


def test_there_is_a_unit_for_every_long_running_process():
    names = {p.name for p in UNITS}
    assert names == {"sirena-smsc-sim.service", "sirena-worker@.service", "sirena-scheduler.service",
                     "sirena-web.service", "sirena-intake.service"}


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_each_unit_runs_a_real_sirena_command_with_options_that_exist(path: Path):
    service = unit(path)["Service"]
    [exec_start] = service["ExecStart"]
    env = example_env()
    words = shlex.split(exec_start.replace("%i", "1").replace("%H", "host"))
    words = [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], w) for w in words]  # ${VAR}: from the env file
    assert words[0] == "/opt/sirena/.venv/bin/sirena", exec_start
    command, rest = resolve(words[1:])
    assert not isinstance(command, click.Group) or rest == [] or rest[0].startswith("-"), exec_start
    command.make_context(command.name or "sirena", list(rest), resilient_parsing=False)  # unknown option: raises
    assert service["EnvironmentFile"] == ["/etc/sirena/sirena.env"]
    assert service["User"] == ["sirena"] and service["Restart"][0] in ("always", "on-failure")
    assert service.get("KillSignal", ["SIGTERM"]) == ["SIGTERM"]  # every process stops cleanly on it


def test_the_environment_file_names_only_real_settings_and_carrier_passwords():
    env = example_env()
    settings = set(Settings().shown())
    passwords = {c.password_env for c in load_carriers(ROOT / "broadcast" / "carriers.demo.toml", None).carriers}
    for name in env:
        assert name in settings or name in passwords or name == "GATEWAY_COUNT", name
    assert {"SIRENA_DATABASE_URL", "SIRENA_REDIS_URL", "SIRENA_SECRET_KEY_FILE", "SIRENA_CARRIERS_FILE",
            "SIRENA_ONCALL_GROUP"} <= set(env)
    assert all(not env[p] for p in passwords), "no password is written in the example"
    filled = {k: v.replace("FILL-IN", "x") for k, v in env.items() if v and k != "GATEWAY_COUNT"}
    Settings.from_env(filled)  # every value given parses as Sirena would read it at start


def test_the_simulator_file_stands_for_the_carriers_of_the_carriers_file():
    env = {"SIRENA_CARRIER_ALPHA_PASSWORD": "alpha-pw", "SIRENA_CARRIER_BETA_PASSWORD": "beta-pw"}
    simulated = {c.name: c for c in load_config(ROOT / "deploy" / "smsc-sim.toml", env).carriers}
    carriers = load_carriers(ROOT / "broadcast" / "carriers.demo.toml", env)
    for carrier in carriers.carriers:
        sim = simulated[carrier.name]
        assert (sim.port, sim.system_id, sim.password) == (carrier.port, carrier.system_id, carrier.password.reveal())
        assert sim.handsets.reply_share == 0  # handsets answer only when made to: sirena smsc-sim reply


def test_the_deployment_page_is_linked_and_names_every_unit_and_the_handset_command():
    page = (ROOT / "docs" / "deploy.md").read_text()
    assert "docs/deploy.md" in (ROOT / "README.md").read_text()
    for path in UNITS:
        assert path.name in page, path.name
    assert "sirena smsc-sim reply --from" in page and "SIRENA_ONCALL_GROUP" in page
