"""The openai generator's budget: images and USD spent (from the ledger) and held by calls in flight."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from medaug.adapters.generators.openai_edits.config import OpenAIConfig


@dataclass(frozen=True)
class Hold:
    """Budget held by one call in flight."""

    images: int
    usd: float


class Stop(Exception):
    """Another worker stopped the batch; end this one without a call."""


class Budget:
    """Images and estimated USD paid so far (from the ledger) plus calls in flight.

    One instance per generator serves every worker: a call holds its share before it is sent and
    settles it after, so calls in flight together can never ask for more than the budget has left.
    A call's USD share is held at the dearest price per image seen so far (the configured price,
    the ledger's average, or what any settled call billed): when the usage-based cost of a call
    comes out above ``prices_usd``, later calls hold that much, so the overshoot of ``budget_usd``
    is limited to the calls in flight when the dearer price was first seen.
    """

    def __init__(self, config: OpenAIConfig, spent_images: int, spent_usd: float) -> None:
        self._config = config
        self._changed = threading.Condition()
        self.spent_images, self.spent_usd = spent_images, spent_usd
        self._held_images, self._held_usd = 0, 0.0
        self._price = max(config.price_per_image(), spent_usd / spent_images if spent_images else 0.0)

    def reserve(self, wanted: int) -> Hold:
        """Hold budget for up to ``wanted`` images; the hold's ``images`` may be 0 (budget reached).

        While calls in flight hold all that is left, this waits for them to settle: one that is
        refused or fails gives its hold back, so the budget is only reported reached once it is spent.
        """
        with self._changed:
            allowed = self._left(wanted)
            while allowed < 1 and self._held_images > 0:
                self._changed.wait()
                allowed = self._left(wanted)
            hold = Hold(images=allowed, usd=allowed * self._price)
            self._held_images += hold.images
            self._held_usd += hold.usd
            return hold

    def _left(self, wanted: int) -> int:
        allowed = wanted
        if self._config.budget_images is not None:
            allowed = min(allowed, self._config.budget_images - self.spent_images - self._held_images)
        if self._config.budget_usd is not None and self._price > 0:
            left = self._config.budget_usd - self.spent_usd - self._held_usd
            allowed = min(allowed, math.floor(left / self._price + 1e-9))
        return max(allowed, 0)

    def settle(self, hold: Hold, images: int, usd: float) -> None:
        """Release a hold and record what the call actually billed."""
        with self._changed:
            self._held_images -= hold.images
            self._held_usd -= hold.usd
            self.spent_images += images
            self.spent_usd += usd
            if images:
                self._price = max(self._price, usd / images)
            self._changed.notify_all()

    def describe(self) -> str:
        """What was spent against which cap, for messages."""
        cfg = self._config
        images = f"{self.spent_images} images" + (f" of {cfg.budget_images}" if cfg.budget_images is not None else "")
        usd = f"${self.spent_usd:.2f}" + (f" of ${cfg.budget_usd:.2f}" if cfg.budget_usd is not None else "")
        return f"spent {images}, {usd}"
