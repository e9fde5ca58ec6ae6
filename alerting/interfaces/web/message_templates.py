"""Ready texts the composer starts from: the frequent alerts, per language, with placeholders.

Their titles are shown in the operator's language; the texts are the SMS in each language. They
only fill the form; the composed text goes through the same validation and approval as a
typed one. (Editable, per-role templates stored in the database are not built yet.)
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext
from flask_babel.speaklater import LazyString


@dataclass(frozen=True)
class MessageTemplate:
    key: str
    title: LazyString  # in the operator's language when shown
    texts: dict[str, str]


TEMPLATES = (
    MessageTemplate("evacuate", lazy_gettext("Evacuation"), {
        "es": "EVACUAR AHORA {nombre|vecino}: diríjase al punto de encuentro más cercano. Responda ACK {codigo} "
              "al estar a salvo o AYUDA {codigo} si necesita ayuda.",
        "en": "EVACUATE NOW: go to the nearest meeting point. Reply ACK {codigo} when safe or HELP {codigo} "
              "if you need help."}),
    MessageTemplate("wildfire", lazy_gettext("Wildfire"), {
        "es": "Incendio forestal cerca de su sector. Prepárese para evacuar y siga las indicaciones de Bomberos. "
              "Responda ACK {codigo}.",
        "en": "Wildfire near your area. Get ready to evacuate and follow the fire brigade. Reply ACK {codigo}."}),
    MessageTemplate("callout", lazy_gettext("Crew call-out"), {
        "es": "Llamado a {unidad|brigada}: presentarse en el cuartel. Responda ACK {codigo} si va, NO {codigo} "
              "si no puede.",
        "en": "Call-out for {unidad|crew}: report to the station. Reply ACK {codigo} if coming, NO {codigo} if not."}),
    MessageTemplate("water", lazy_gettext("Water cut"), {
        "es": "Corte de agua programado en su sector. Guarde agua. Más información con su municipio.",
        "en": "Scheduled water cut in your area. Store water. More from your municipality."}),
    MessageTemplate("road", lazy_gettext("Road closed"), {
        "es": "Ruta cortada por emergencia. Use vías alternativas y no se acerque a la zona.",
        "en": "Road closed by an emergency. Use other routes and keep away from the area."}),
    MessageTemplate("verify", lazy_gettext("Verify number"), {
        "es": "Protección Civil: responda SI {codigo} para confirmar que este sigue siendo su número.",
        "en": "Civil Protection: reply YES {codigo} to confirm this is still your number."}),
)
