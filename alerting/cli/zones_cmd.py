"""`sirena zones import|export|list`: zones from GeoJSON in, GeoJSON out."""

from __future__ import annotations

import json
from pathlib import Path

import click

from alerting.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.group("zones")
def zones_group() -> None:
    """Geographic zones (GeoJSON in and out, versioned)."""


@zones_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Save everything in FILE as one zone of this name.")
@click.option("--repair", is_flag=True, help="Fix invalid polygons with make_valid and report what changed.")
@json_option
@pass_ctx
def zones_import(ctx: Context, file: Path, name: str | None, repair: bool, as_json: bool) -> None:
    """Import zones from a GeoJSON Feature, FeatureCollection, Polygon or MultiPolygon."""
    from alerting.db import transaction
    from alerting.errors import InvalidInput
    from geo.zones import import_geojson

    settings = ctx.db()
    try:
        data = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file}: not UTF-8 text", fields={"file": "not UTF-8 text (a GeoJSON file?)"}) from None
    with transaction() as session:
        results = import_geojson(session, data, name=name, repair=repair, region=settings.default_region)
    lines = []
    for r in results:
        state = f"saved as version {r.version}" if r.created else f"unchanged (version {r.version})"
        lines.append(f"zone \"{r.name}\": {state}, {r.area_km2} km², {r.vertices} vertices")
        lines += [f"  repaired: {m}" for m in r.repairs] + [f"  warning: {m}" for m in r.warnings]
    if as_json:  # the JSON carries them too; a person reading the terminal should still see them
        for r in results:
            for message in r.warnings:
                click.echo(f"warning: {message}", err=True)
    emit(as_json, {"zones": [r.to_json() for r in results]}, "\n".join(lines))


@zones_group.command("export")
@click.argument("name")
@click.option("--version", "version", type=int, help="A given version (default: the current one).")
@pass_ctx
def zones_export(ctx: Context, name: str, version: int | None) -> None:
    """Print one zone as a GeoJSON Feature (lon/lat)."""
    from alerting.db import transaction
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
    from alerting.db import transaction
    from geo.zones import list_zones

    ctx.db()
    with transaction() as session:
        zones = list_zones(session)
    human = "\n".join(f"{z['name']}  v{z['version']} ({z['versions']} version(s))  {z['area_km2']} km²  "
                      f"{z['source']}" for z in zones) or "no zones"
    emit(as_json, {"zones": zones}, human)
