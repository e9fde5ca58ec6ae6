"""A target preview: who a spec reaches now and why not more, and what the texts will cost in SMS."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text as sql

from alerting.base.sms_text.encoding import analyze
from alerting.base.sms_text.gsm7 import ALPHABET
from alerting.base.sms_text.rendering import ALERT_FIELDS, PLACEHOLDER, is_personalised
from geo.reach import WORD_BITS, Source


@dataclass
class Preview:
    """Counts only; nothing is written to build one."""

    total: int
    matched: int  # contacts reached by zones ∪ groups, before criteria, exclusions and opt-outs
    removed_by_criteria: int
    excluded: int
    opted_out_excluded: int
    opted_out_included: int
    include_opted_out: bool
    by_zone: list[dict[str, Any]]
    by_group: list[dict[str, Any]]
    by_language: dict[str, int]
    zone_versions: dict[str, int]
    sms: dict[str, Any] | None = None
    # The opt-out policy, the alert it was applied to and whether opted-out contacts are reached.
    opt_out_policy: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def why_empty(self) -> str:
        """One clause per source and filter, for an empty target's refusal."""
        said = [f"zone \"{z['name']}\" v{z['version']}: {z['located']} located inside" for z in self.by_zone]
        said += [f"group \"{g['name']}\": {g['members']} member(s)" for g in self.by_group]
        said.append(f"{self.matched} matched, {self.removed_by_criteria} removed by criteria, "
                    f"{self.excluded} excluded, {self.opted_out_excluded} opted out")
        return "; ".join(said)


def assemble(rows: list[Any], srcs: list[Source], *, include_opted_out: bool) -> Preview:
    """Fold the preview statement's rows (status, opted_out, language, count, source-set words…)."""
    statuses: dict[str, int] = {}
    by_language: dict[str, int] = {}
    reached = [0] * len(srcs)
    recipients = [0] * len(srcs)
    opted_in_total = 0
    for status, opted_out, language, n, *words in rows:
        statuses[status] = statuses.get(status, 0) + n
        if status == "recipient":
            by_language[language] = by_language.get(language, 0) + n
            opted_in_total += n if opted_out else 0
        for i in range(len(srcs)):
            if words[i // WORD_BITS] >> (i % WORD_BITS) & 1:
                reached[i] += n
                recipients[i] += n if status == "recipient" else 0
    by_zone, by_group = [], []
    for i, s in enumerate(srcs):
        if s.kind == "zone":
            by_zone.append({"name": s.ref.name, "version": s.ref.version,  # type: ignore[union-attr]
                            "located": reached[i], "recipients": recipients[i],
                            "subscribed": s.ref.subscribers})  # type: ignore[union-attr]
        else:
            by_group.append({"name": s.ref.name, "kind": s.ref.kind,  # type: ignore[union-attr]
                             "members": reached[i], "recipients": recipients[i]})
    return Preview(
        total=statuses.get("recipient", 0), matched=sum(statuses.values()),
        removed_by_criteria=statuses.get("criteria", 0), excluded=statuses.get("excluded", 0),
        opted_out_excluded=statuses.get("opted_out", 0),
        opted_out_included=opted_in_total if include_opted_out else 0, include_opted_out=include_opted_out,
        by_zone=by_zone, by_group=by_group, by_language=dict(sorted(by_language.items())),
        zone_versions={s.ref.name: s.ref.version for s in srcs if s.kind == "zone"},  # type: ignore[union-attr]
    )


def estimate_sms(by_language: Mapping[str, int], *, text: str | None,
                 languages: Mapping[str, str] | None = None) -> dict[str, Any]:
    """SMS parts per language text and the total SMS count, with alerting.base.sms_text.encoding's segmentation.

    A recipient whose language has no text of its own gets `text`, else the first text given.
    """
    texts = dict(languages or {})
    fallback = text if text is not None else next(iter(texts.values()), "")
    per_language: dict[str, Any] = {}
    total = 0
    for lang, count in by_language.items():
        info = analyze(texts.get(lang, fallback))
        per_language[lang] = {"encoding": info.encoding, "parts": info.parts, "recipients": count,
                              "sms": info.parts * count, "own_text": lang in texts}
        total += info.parts * count
    info = analyze(fallback)
    return {"parts": info.parts, "encoding": info.encoding, "per_language": per_language, "total_sms": total}


PERSONAL = {"nombre", "name"}  # the contact's name; any other placeholder but the alert's own is an attribute


def longest_expansions(session: Any, texts: Mapping[str, str]) -> dict[str, str]:
    """Each personalised text with every contact placeholder filled by the longest value in the
    directory (or its default, if longer), in UCS-2 if any value needs it: the text whose parts
    bound every recipient's. Texts without contact placeholders are left out. One aggregate query
    per placeholder name."""
    names = {m.group(1).lower() for body in texts.values() for m in PLACEHOLDER.finditer(body)} - ALERT_FIELDS
    if not names:
        return {}
    not_gsm = "[^" + "".join("\\" + c if c in "]\\^-[" else c for c in sorted(ALPHABET)) + "]"
    longest: dict[str, tuple[int, bool]] = {}
    for name in names:
        column = "name" if name in PERSONAL else "attributes->>:attr"
        row = session.execute(sql(f"SELECT coalesce(max(length({column})), 0), "
                                  f"coalesce(bool_or({column} ~ :ng), false) FROM contacts"),
                              {"attr": name, "ng": not_gsm}).one()
        longest[name] = (int(row[0]), bool(row[1]))

    def fill(match: Any) -> str:
        name, default = match.group(1).lower(), match.group(2) or ""
        if name in ALERT_FIELDS:
            return match.group(0)
        size, wide = longest.get(name, (0, False))
        filler = "ŵ" if wide else "€"  # a character outside GSM-7 (the text goes UCS-2) / GSM-7's widest (2 septets)
        return filler * size if size > len(default) or wide else default

    return {lang: PLACEHOLDER.sub(fill, body) for lang, body in texts.items()
            if is_personalised(body)}
