"""Encoding benchmark: analyses/s and encodes/s for a short GSM-7, a long GSM-7 and a UCS-2 text.

Every call gets a distinct text (a recipient-specific reference code), as personalized alerts do,
so nothing can be served from a cache. Run: .venv/bin/python bench/encoding.py [--seconds S]
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

from alerting.base.sms_text.encoding import analyze, encode_parts

TEXTS = {
    # ~100 GSM-7 characters: the common case.
    "short_gsm7": "Evacuar zona norte del rio por crecida. Dirigirse a la escuela 12. Responda ACK. Ref {ref:06d}",
    # ~600 septets with extension characters: four parts, escape pairs near the cuts.
    "long_gsm7": (
        "Corte de agua {{sector 4}} por rotura de caño principal; reparacion estimada 6 h. "
        "Los tanques [A] y [B] quedan sin presion. Distribucion de agua: plaza central y club 9 de Julio. "
        "Costo de reconexion 0€ ~ sin cargo. Consultas: 0800-AGUA | www.municipio.example/agua ^ "
    )
    * 2
    + "Ref {ref:06d}",
    # ~100 characters with Spanish accents and one emoji: UCS-2, two parts.
    "ucs2": "🚨 Atención: evacúe la zona del río. Diríjase al refugio más próximo. Información: 103. Ref {ref:06d}",
}


def rate(call: Callable[[str], object], template: str, seconds: float) -> tuple[float, int]:
    """Calls per second of `call` over distinct texts for about `seconds`."""
    texts = [template.format(ref=i) for i in range(10_000)]
    done, start = 0, time.perf_counter()
    while True:
        for text in texts:
            call(text)
        done += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    result: dict[str, object] = {"bench": "encoding", "python": platform.python_version()}
    for name, template in TEXTS.items():
        info = analyze(template.format(ref=0))
        analyses, _ = rate(analyze, template, args.seconds)
        encodes, _ = rate(lambda text: encode_parts(text, 7), template, args.seconds)
        print(
            f"{name:<11} {info.encoding} {info.chars:>4} chars {info.parts} part(s): "
            f"{analyses:>10,.0f} analyses/s {encodes:>10,.0f} encodes/s"
        )
        result[name] = {
            "encoding": info.encoding,
            "chars": info.chars,
            "parts": info.parts,
            "analyses_per_s": round(analyses),
            "encodes_per_s": round(encodes),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
