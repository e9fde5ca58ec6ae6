"""Console language (Spanish or English, per operator) and dates in the operations centre's zone.

A small catalogue keyed by the English text; a missing entry shows the English. It stands in
for Flask-Babel's gettext catalogues until those are compiled in the build (same call shape,
`_("text", name=value)`), so templates need no change when they are.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app, g

LANGUAGES = ("es", "en")

ES: dict[str, str] = {
    "Sign in": "Ingresar",
    "Sign out": "Salir",
    "User name": "Usuario",
    "Password": "Contraseña",
    "Code from your authenticator app": "Código de su aplicación autenticadora",
    "Continue": "Continuar",
    "Set up your authenticator": "Configure su autenticador",
    "Scan this QR code with your authenticator app, then type the 6-digit code it shows.":
        "Escanee este código QR con su aplicación autenticadora y escriba el código de 6 dígitos que muestra.",
    "Or type this key by hand": "O escriba esta clave a mano",
    "Dashboard": "Panel",
    "Alerts": "Alertas",
    "New alert": "Nueva alerta",
    "Approvals": "Aprobaciones",
    "Directory": "Directorio",
    "Contacts": "Contactos",
    "Groups": "Grupos",
    "Zones": "Zonas",
    "Admin": "Administración",
    "Operators": "Operadores",
    "API tokens": "Tokens de API",
    "Audit": "Auditoría",
    "Timeline": "Línea de tiempo",
    "Verify the trail": "Verificar el registro",
    "Export": "Exportar",
    "Change password": "Cambiar contraseña",
    "Current password": "Contraseña actual",
    "New password": "Contraseña nueva",
    "Repeat the new password": "Repita la contraseña nueva",
    "Save": "Guardar",
    "Language": "Idioma",
    "Mode": "Modo",
    "LIVE": "REAL",
    "EXERCISE": "SIMULACRO",
    "TEST": "PRUEBA",
    "This is a LIVE alert: it reaches real phones.": "Esta es una alerta REAL: llega a teléfonos reales.",
    "EXERCISE: drill groups only, every SMS starts with the exercise marker.":
        "SIMULACRO: solo grupos de simulacro; cada SMS comienza con la marca de simulacro.",
    "TEST: drill groups only, every SMS starts with the test marker.":
        "PRUEBA: solo grupos de simulacro; cada SMS comienza con la marca de prueba.",
    "Title": "Título",
    "Priority": "Prioridad",
    "Sender": "Remitente",
    "Text in Spanish": "Texto en español",
    "Text in English": "Texto en inglés",
    "Correction text": "Texto de corrección",
    "Cancellation text": "Texto de anulación",
    "Target": "Destino",
    "Schedule (optional)": "Programar (opcional)",
    "ACK deadline (seconds)": "Plazo de confirmación (segundos)",
    "Recipients": "Destinatarios",
    "Preview recipients": "Previsualizar destinatarios",
    "Save draft": "Guardar borrador",
    "Submit for approval": "Enviar a aprobación",
    "Approve": "Aprobar",
    "Reject": "Rechazar",
    "Reason": "Motivo",
    "Cancel the send": "Detener el envío",
    "Send the correction now": "Enviar la corrección ahora",
    "Waiting for approval": "Esperando aprobación",
    "In progress": "En curso",
    "Recent": "Recientes",
    "State": "Estado",
    "What phones will show": "Lo que mostrarán los teléfonos",
    "Nothing here yet.": "Aún no hay nada aquí.",
    "Counts by state": "Conteos por estado",
    "Counts by carrier": "Conteos por operador",
    "Replies": "Respuestas",
    "Search": "Buscar",
    "Import": "Importar",
    "Create": "Crear",
    "Revoke": "Revocar",
    "Unlock": "Desbloquear",
    "Roles": "Roles",
    "Scopes": "Alcances",
    "Shown once: copy it now.": "Se muestra una sola vez: cópielo ahora.",
    "Confirm LIVE by typing": "Confirme REAL escribiendo",
    "Segments": "Segmentos",
}


def language() -> str:
    operator = g.get("operator")
    lang = getattr(operator, "language", None) or "es"
    return lang if lang in LANGUAGES else "es"


def gettext(text: str, **values: object) -> str:
    """`text` in the operator's language, with `{name}` placeholders filled."""
    out = ES.get(text, text) if language() == "es" else text
    return out.format(**values) if values else out


def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC datetime shown in the operations centre's time zone (settings.timezone)."""
    if value is None:
        return "—"
    zone = ZoneInfo(current_app.config["SIRENA_TIMEZONE"])
    return value.astimezone(zone).strftime(fmt)
