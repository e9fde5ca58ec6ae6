"""`sirena zones import|export|list`: zones from GeoJSON in, GeoJSON out."""

from __future__ import annotations

import json
from pathlib import Path

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.group("zones")
def zones_group() -> None:
    """Geographic zones (GeoJSON in and out, versioned)."""


BATCH_ZONES = 10  # one transaction each: 1-2.5 s at 0.1-0.25 s a zone on the development machine


@zones_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Save everything in FILE as one zone of this name.")
@click.option("--repair", is_flag=True, help="Fix invalid polygons with make_valid and report what changed.")
@click.option("--batch", "batch", default=BATCH_ZONES, show_default=True, type=click.IntRange(1, 1000),
              help="Zones saved per transaction.")
@json_option
@pass_ctx
def zones_import(ctx: Context, file: Path, name: str | None, repair: bool, batch: int, as_json: bool) -> None:
    """Import zones from a GeoJSON Feature, FeatureCollection, Polygon or MultiPolygon, of any size.

    Every feature is checked first (a bad one: nothing is saved, each bad feature named); then the
    zones are saved BATCH at a time, one transaction each, with progress on stderr. If saving stops
    part-way, the batches done stay saved: run the same import again (unchanged zones stay as they are).
    """
    import getpass
    import time

    from alerting.base.db import transaction
    from audit.actor import Actor
    from geo import zone_files
    from geo.zones import store_zones

    settings = ctx.db()
    actor = Actor(kind="system", name=f"cli:{getpass.getuser()}", interface="cli")
    started = time.monotonic()
    checked = zone_files.check_geojson(file.read_bytes(), name=name, repair=repair, region=settings.default_region)
    click.echo(f"{file.name}: {len(checked):,} zone(s) checked in {time.monotonic() - started:.1f} s; saving "
               f"{batch} per transaction", err=True)
    results, longest_s, said = [], 0.0, time.monotonic()
    for at in range(0, len(checked), batch):
        began = time.monotonic()
        with transaction() as session:
            results += store_zones(session, checked[at:at + batch], actor=actor)
        longest_s = max(longest_s, time.monotonic() - began)
        if time.monotonic() - said >= 2 or len(results) == len(checked):
            said = time.monotonic()
            click.echo(f"  saved {len(results):,} of {len(checked):,} ({100 * len(results) // len(checked)} %)",
                       err=True)
    lines = []
    for r in results if len(results) <= 100 else []:
        state = f"saved as version {r.version}" if r.created else f"unchanged (version {r.version})"
        lines.append(f"zone \"{r.name}\": {state}, {r.area_km2} km², {r.vertices} vertices")
        lines += [f"  repaired: {m}" for m in r.repairs] + [f"  warning: {m}" for m in r.warnings]
    created = sum(r.created for r in results)
    lines.append(f"{len(results):,} zone(s): {created:,} new version(s), {len(results) - created:,} unchanged, "
                 f"in {time.monotonic() - started:.1f} s (longest transaction {longest_s:.1f} s)")
    if as_json or len(results) > 100:  # the JSON carries them too; a person reading the terminal should see them
        for r in results:
            for message in r.warnings:
                click.echo(f"warning: {r.name}: {message}", err=True)
    emit(as_json, {"zones": [r.to_json() for r in results], "saved": len(results), "created": created,
                   "seconds": round(time.monotonic() - started, 1), "longest_transaction_s": round(longest_s, 2)},
         "\n".join(lines))


@zones_group.command("export")
@click.argument("name")
@click.option("--version", "version", type=int, help="A given version (default: the current one).")
@pass_ctx
def zones_export(ctx: Context, name: str, version: int | None) -> None:
    """Print one zone as a GeoJSON Feature (lon/lat)."""
    from alerting.base.db import transaction
    from geo.zones import zone_geojson

    ctx.db()
    with transaction() as session:
        feature = zone_geojson(session, name, version)
    click.echo(json.dumps(feature, ensure_ascii=False))


@zones_group.command("list")
@json_option
@pass_ctx
def zones_list(ctx: Context, as_json: bool) -> None:
    """Current zones: version, number of versions, area, source."""
    from alerting.base.db import transaction
    from geo.zones import list_zones

    ctx.db()
    with transaction() as session:
        zones = list_zones(session)
    human = "\n".join(f"{z['name']}  v{z['version']} ({z['versions']} version(s))  {z['area_km2']} km²  "
                      f"{z['source']}" for z in zones) or "no zones"
    emit(as_json, {"zones": zones}, human)
