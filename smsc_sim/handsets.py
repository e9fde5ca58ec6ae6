"""Simulated handsets: which recipients answer an alert, when, and with what text."""

from __future__ import annotations

import random
import re

from smsc_sim.config import HandsetConfig


class Handsets:
    """Decides the reply of a recipient to a message that reached them (one per full message)."""

    def __init__(self, config: HandsetConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self._code = re.compile(config.code_regex)
        self._texts = [text for text, _ in config.texts]
        self._weights = [weight for _, weight in config.texts]

    def reply_code(self, alert_text: str) -> str | None:
        """The reply code the alert asks for (first regex group), or None."""
        match = self._code.search(alert_text)
        if match is None:
            return None
        return match.group(1) if match.groups() else match.group(0)

    def reply_to(self, alert_text: str) -> tuple[float, str] | None:
        """(delay_s, reply text) if this recipient answers, else None."""
        if not self.config.reply_share or self.rng.random() >= self.config.reply_share:
            return None
        low, high = self.config.delay_s
        delay = low if low == high else self.rng.uniform(low, high)
        template = self.rng.choices(self._texts, weights=self._weights)[0]
        code = self.reply_code(alert_text)
        if code is None:
            # Nothing to quote: the handset answers without a code, as people do.
            text = template.replace("{code}", "").replace("{wrong_code}", "").strip()
            return delay, text or "ACK"
        wrong = code
        while wrong == code:
            wrong = f"{self.rng.randrange(10_000):04d}"
        return delay, template.replace("{code}", code).replace("{wrong_code}", wrong)
