"""A synthetic city for the demo: contacts with homes, role groups, districts and a flood zone.

Everything is generated set-based in SQL (generate_series), so 200,000 contacts take seconds.
The city is a 20 × 20 km square around Santiago de Chile's centre; a river crosses it west to
east and the flood-risk zone is a band along it.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapely.geometry import LineString, Polygon, box
from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base.db import rowcount
from audit.actor import Actor
from geo.zones import save_zone

WEST, SOUTH, EAST, NORTH = -70.76, -33.56, -70.54, -33.36
DISTRICTS = {  # name → (west, south, east, north)
    "Poniente": (WEST, SOUTH, -70.686, NORTH),
    "Centro": (-70.686, -33.46, -70.613, NORTH),
    "Sur": (-70.686, SOUTH, -70.613, -33.46),
    "Oriente": (-70.613, SOUTH, EAST, NORTH),
}
RIVER = LineString([(WEST, -33.43), (-70.70, -33.425), (-70.66, -33.435), (-70.62, -33.428),
                    (-70.58, -33.42), (EAST, -33.415)])
GROUPS = {  # name → (share of contacts with this role, role attribute, drill group)
    "brigadas": (0.02, "brigadista", True),
    "defensa civil": (0.01, "defensa civil", False),
    "salud": (0.015, "salud", False),
}
SUPERVISORS = "supervisores"


@dataclass(frozen=True)
class City:
    contacts: int
    groups: dict[str, int]
    zones: dict[str, int]  # zone → contacts living in it


def flood_zone() -> Polygon:
    """The flood-risk band: 1.2 km either side of the river (about 0.011° of latitude)."""
    return RIVER.buffer(0.011, cap_style="flat").intersection(box(WEST, SOUTH, EAST, NORTH))


def seed_city(session: Session, contacts: int, actor: Actor) -> City:
    """Write the city into an empty directory. Not idempotent: the demo starts from a fresh database."""

    session.execute(text("SET LOCAL jit = off"))
    session.execute(text("""
        INSERT INTO contacts (msisdn, name, language, attributes)
        SELECT '+5697' || lpad(i::text, 7, '0'),
               (ARRAY['Ana','Bruno','Carla','Diego','Elena','Felipe','Gabriela','Hugo','Isidora','Javier',
                      'Karen','Luis','María','Nicolás','Olga','Pedro','Rocío','Sergio','Tamara','Víctor'])[1 + i % 20]
                 || ' ' ||
               (ARRAY['González','Muñoz','Rojas','Díaz','Pérez','Soto','Contreras','Silva','Martínez',
                      'Sepúlveda','Morales','Rodríguez','López','Fuentes','Araya'])[1 + (i / 20) % 15],
               CASE WHEN i % 10 = 0 THEN 'en' ELSE 'es' END,
               jsonb_build_object('role', CASE WHEN i % 100 < 2 THEN 'brigadista'
                                               WHEN i % 100 < 3 THEN 'defensa civil'
                                               WHEN i % 1000 < 45 THEN 'salud' ELSE 'vecino' END,
                                  'unidad', 'U' || (i % 12))
          FROM generate_series(1, :n) i
    """), {"n": contacts})
    session.execute(text("""
        INSERT INTO contact_locations (contact_id, label, geom)
        SELECT id, 'home', ST_SetSRID(ST_MakePoint(:w + random() * (:e - :w), :s + random() * (:n - :s)), 4326)
          FROM contacts
    """), {"w": WEST, "e": EAST, "s": SOUTH, "n": NORTH})
    groups: dict[str, int] = {}
    for name, (_share, role, drill) in GROUPS.items():
        session.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) "
                             "VALUES (:g, 'static', :d, :drill)"),
                        {"g": name, "d": f"Demo: contacts whose role is {role}", "drill": drill})
        groups[name] = rowcount(session.execute(text("""
            INSERT INTO group_members (group_id, contact_id)
            SELECT g.id, c.id FROM groups g JOIN contacts c ON c.attributes->>'role' = :role WHERE g.name = :g
        """), {"g": name, "role": role}))
    session.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) "
                         "VALUES (:g, 'static', 'Demo: brigade chiefs', false)"),
                    {"g": SUPERVISORS})
    groups[SUPERVISORS] = rowcount(session.execute(text("""
        INSERT INTO group_members (group_id, contact_id)
        SELECT g.id, c.id FROM groups g, contacts c
         WHERE g.name = :g AND c.attributes->>'role' = 'brigadista'
         ORDER BY c.id LIMIT 12
    """), {"g": SUPERVISORS}))
    zones: dict[str, int] = {}
    shapes = {name: box(*bounds) for name, bounds in DISTRICTS.items()}
    shapes["Zona de inundación"] = flood_zone()
    for name, shape in shapes.items():
        zone = save_zone(session, name, shape, "demo", description="Demo zone", actor=actor, region="CL")
        zones[name] = session.execute(text("""
            SELECT count(*) FROM contact_locations l JOIN zones z ON z.id = :z
             WHERE ST_Intersects(z.geom, l.geom)
        """), {"z": zone.id}).scalar_one()
        session.execute(text("UPDATE zones SET expected_population = :p WHERE id = :z"),
                        {"p": zones[name], "z": zone.id})
    return City(contacts, groups, zones)
