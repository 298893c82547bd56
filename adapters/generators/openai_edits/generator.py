"""The ``openai`` generator: variations of real training images made by the OpenAI images API.

Each source image is uploaded with ``images.edit`` (a GPT Image model and a per-grade prompt) or,
for servers that still offer it, the legacy ``images.create_variation``. The adapter retries
transient failures itself (the SDK client must be built with ``max_retries=0``), skips
content-policy refusals, keeps every paid image on disk before the next call, and stops at the
configured budget. Nothing is uploaded unless ``allow_external_upload`` is true.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import structlog

from medaug.adapters.generators.openai_edits.budget import Budget, Stop
from medaug.adapters.generators.openai_edits.config import OpenAIConfig
from medaug.adapters.generators.openai_edits.images import (
    EDIT_MAX_BYTES,
    VARIATION_MAX_BYTES,
    decode_b64_image,
    prepare_upload,
    to_working_size,
)
from medaug.adapters.generators.openai_edits.ledger import Ledger, LedgerEntry, ResultCache, Status, now
from medaug.adapters.generators.openai_edits.retry import Failure, backoff_delay, classify
from medaug.application.errors import BudgetExhausted, ConfigError, GeneratorError
from medaug.application.ports import CostEstimate, GenerationRequest, GenerationResult
from medaug.domain import Grade

_log = structlog.get_logger(__name__)

_KEY_SHAPED = re.compile(r"(sk-[A-Za-z0-9_*-]{6,})")

PRIVACY_REFUSAL = (
    "the openai generator uploads training images (patient data) to an external API; it is off "
    "until you set generators.openai.allow_external_upload = true in the config "
    "(or MEDAUG_GENERATORS__OPENAI__ALLOW_EXTERNAL_UPLOAD=true)"
)


LEDGER_FILE = "ledger.jsonl"
"""The JSON-lines ledger of every upload, in the generator's work folder."""


class OpenAIGenerator:
    """ImageGenerator (and CostEstimating) over the OpenAI images API.

    Args:
        client: an ``openai.OpenAI`` client built with ``max_retries=0`` (None when no key is
            configured: estimates still work, generating raises ``ConfigError``).
        config: the generator's settings.
        work_dir: this store's folder for the ledger and paid results.
        sleep: how to wait between retries (injectable for tests).
    """

    def __init__(
        self,
        client: openai.OpenAI | None,
        config: OpenAIConfig,
        work_dir: Path,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._config = config
        self._work_dir = Path(work_dir)
        self._ledger = Ledger(self._work_dir / LEDGER_FILE)
        self._cache = ResultCache(self._work_dir)
        self._sleep = sleep
        self._secret = str(getattr(client, "api_key", "") or "") if client is not None else ""
        self._budget: Budget | None = None
        self._budget_lock = threading.Lock()
        self._refusals: dict[tuple[str, str], str] | None = None
        self._refusals_lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def name(self) -> str:
        """``openai``."""
        return "openai"

    @property
    def needs_source(self) -> bool:
        """Every image is made from a real training image."""
        return True

    @property
    def batch_size(self) -> int:
        """As many requests as calls may be in flight at once."""
        return self._config.max_concurrency

    # -- estimating ------------------------------------------------------------------------------

    def estimate(self, requests: Sequence[GenerationRequest]) -> CostEstimate:
        """Calls and estimated cost of ``requests``; sends and writes nothing."""
        refused = self._refused_index()
        groups: dict[str, int] = defaultdict(int)
        reused = skipped = 0
        for request in requests:
            fingerprint = self._fingerprint(request)
            if self._cache.result(fingerprint, request.image_id, request.seed) is not None:
                reused += 1
            elif (request.image_id, fingerprint) in refused:
                skipped += 1
            else:
                groups[fingerprint] += 1
        calls = 0
        per_call = self._config.images_per_call
        for fingerprint, count in groups.items():
            spares = min(self._cache.spare_count(fingerprint), count)
            reused += spares
            calls += math.ceil((count - spares) / per_call)
        images = calls * per_call
        usd = images * self._config.price_per_image()
        return CostEstimate(
            requests=len(requests), reused=reused, refused=skipped, calls=calls, images=images, usd=usd,
            notes=self._estimate_notes(images, usd),
        )

    def _estimate_notes(self, images: int, usd: float) -> tuple[str, ...]:
        cfg = self._config
        what = f"{cfg.mode} with {cfg.model}" + (f", quality {cfg.quality}" if cfg.mode == "edit" else "")
        notes = [f"{what}, {cfg.size}, ${cfg.price_per_image():.3f} per image (prices_usd)"]
        budget = self._load_budget()
        if (cfg.budget_images is not None and budget.spent_images + images > cfg.budget_images) or (
            cfg.budget_usd is not None and budget.spent_usd + usd > cfg.budget_usd + 1e-9
        ):
            notes.append(f"the budget will stop the run early ({budget.describe()} so far)")
        if not cfg.allow_external_upload:
            notes.append("allow_external_upload is false: a real run will refuse to upload anything")
        if self._client is None:
            notes.append("no API key configured (generators.openai.api_key or OPENAI_API_KEY)")
        return tuple(notes)

    # -- generating ------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order: paid earlier, a spare, a new call, or a refusal.

        Raises:
            ConfigError: uploads are not allowed, or no API key is configured.
            BudgetExhausted: the budget is reached (finished results ride along).
            GeneratorError: a call failed for good (after retries, or a non-retryable error).
        """
        self._check_ready()
        for request in requests:
            if request.source is None:
                raise GeneratorError(f"openai: request {request.image_id} has no source image to upload")
        self._stop.clear()
        self._load_budget()  # before any worker starts: they all share this one budget
        groups: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            groups[self._fingerprint(request)].append(index)
        results: dict[int, GenerationResult] = {}
        errors: list[Exception] = []
        workers = min(self._config.max_concurrency, len(groups)) or 1
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai") as pool:
            futures = [
                pool.submit(self._serve_group, [requests[i] for i in indices], indices, fingerprint, results, errors)
                for fingerprint, indices in groups.items()
            ]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                self._stop.set()
                raise
        return self._collect(requests, results, errors)

    def _check_ready(self) -> None:
        if not self._config.allow_external_upload:
            raise ConfigError(PRIVACY_REFUSAL)
        if self._client is None:
            raise ConfigError(
                "the openai generator needs an API key: set generators.openai.api_key, "
                "MEDAUG_GENERATORS__OPENAI__API_KEY or OPENAI_API_KEY"
            )

    def _collect(
        self, requests: Sequence[GenerationRequest], results: dict[int, GenerationResult], errors: list[Exception]
    ) -> list[GenerationResult]:
        done = [results[i] for i in sorted(results)]
        budget_stops = [e for e in errors if isinstance(e, BudgetExhausted)]
        others = [e for e in errors if not isinstance(e, BudgetExhausted)]
        if others:
            raise others[0]
        if budget_stops:
            raise BudgetExhausted(self._budget_message(), completed=done)
        return [results[i] for i in range(len(requests))]

    def _serve_group(
        self,
        requests: list[GenerationRequest],
        indices: list[int],
        fingerprint: str,
        results: dict[int, GenerationResult],
        errors: list[Exception],
    ) -> None:
        try:
            for index, request in zip(indices, requests, strict=True):
                results[index] = self._serve(request, fingerprint)
        except Stop:
            return
        except BudgetExhausted as exc:  # calls that already hold budget may finish
            errors.append(exc)
        except Exception as exc:  # handed to the caller thread by _collect
            self._stop.set()
            errors.append(exc)

    def _serve(self, request: GenerationRequest, fingerprint: str) -> GenerationResult:
        cached = self._cache.result(fingerprint, request.image_id, request.seed)
        if cached is None:
            refusal = self._refused_index().get((request.image_id, fingerprint))
            if refusal is not None:
                return GenerationResult(image_id=request.image_id, data=b"", refused=refusal)
            cached = self._cache.claim_spare(fingerprint, request.image_id, request.seed)
        if cached is None:
            return self._call(request, fingerprint)
        png, parameters = cached
        data = to_working_size(png, request.size)
        return GenerationResult(image_id=request.image_id, data=data, parameters=parameters)

    # -- one paid call, with retries --------------------------------------------------------------

    def _call(self, request: GenerationRequest, fingerprint: str) -> GenerationResult:
        budget = self._load_budget()
        hold = budget.reserve(self._config.images_per_call)
        held = hold.images
        if held < 1:
            raise BudgetExhausted(self._budget_message())
        billed, usd = 0, 0.0
        try:
            response, attempt, refusal = self._send_with_retries(request, fingerprint, held)
            if response is None:
                return GenerationResult(image_id=request.image_id, data=b"", refused=refusal)
            try:
                images = self._decode(response, request)
            except GeneratorError as exc:  # answered, so probably billed: count it against the budget
                billed, usd = held, self._cost(response, held)
                self._record(request, fingerprint, "error", attempt, request_id=response._request_id,
                             reason=self._scrub(str(exc)), images=billed, usd=usd)
                raise
            billed, usd = len(images), self._cost(response, len(images))
            parameters = self._keep(request, fingerprint, response, images, usd)
            self._record(request, fingerprint, "ok", attempt, request_id=response._request_id, images=billed, usd=usd)
            data = to_working_size(images[0], request.size)
            return GenerationResult(image_id=request.image_id, data=data, parameters=parameters)
        finally:
            budget.settle(hold, billed, usd)

    def _keep(
        self, request: GenerationRequest, fingerprint: str, response: Any, images: list[bytes], usd: float
    ) -> dict[str, Any]:
        """Write the paid images to disk (the first for this request, the rest as spares)."""
        parameters = self._parameters(request, response, len(images), usd)
        self._cache.put_result(fingerprint, request.image_id, request.seed, images[0], parameters)
        stem = str(response._request_id or f"call-{time.time_ns()}")
        self._cache.add_spares(fingerprint, stem, images[1:], parameters)
        return parameters

    def _send_with_retries(
        self, request: GenerationRequest, fingerprint: str, n: int
    ) -> tuple[Any, int, str | None]:
        """(response, attempt, None), or (None, attempt, reason) for a content-policy refusal."""
        upload = self._upload_bytes(request)
        rng = random.Random(f"{request.seed}:{request.image_id}")
        retries = self._config.max_retries
        for attempt in range(1, retries + 2):
            if self._stop.is_set():
                raise Stop
            _log.info("openai_upload", source_id=request.source_id, image_id=request.image_id, attempt=attempt)
            try:
                return self._send(request, upload, n), attempt, None
            except openai.OpenAIError as exc:
                failure = classify(exc)
            reason = self._scrub(failure.reason)
            if failure.kind == "refused":
                self._record(request, fingerprint, "refused", attempt, request_id=failure.request_id, reason=reason)
                self._refused_index()[(request.image_id, fingerprint)] = reason
                _log.warning("openai_refused", image_id=request.image_id, source_id=request.source_id)
                return None, attempt, reason
            final = failure.kind == "fatal" or attempt > retries
            status = "error" if final else "retry"
            self._record(request, fingerprint, status, attempt, request_id=failure.request_id, reason=reason)
            if final:
                raise GeneratorError(self._failure_message(request, failure, reason, attempt))
            self._wait(request, failure, reason, attempt, rng)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(
        self, request: GenerationRequest, failure: Failure, reason: str, attempt: int, rng: random.Random
    ) -> None:
        cfg = self._config
        if failure.retry_after is not None and failure.retry_after > cfg.max_backoff_s:
            raise GeneratorError(
                f"openai: the API asks to wait {failure.retry_after:.0f} s before retrying {request.image_id} "
                f"(more than max_backoff_s = {cfg.max_backoff_s:g}); re-run later to continue"
            )
        if failure.retry_after is not None:
            delay = failure.retry_after
        else:
            delay = backoff_delay(attempt - 1, base_s=cfg.backoff_s, cap_s=cfg.max_backoff_s, rng=rng)
        _log.info("openai_retry", image_id=request.image_id, attempt=attempt, reason=reason[:80],
                  wait_s=round(delay, 3))
        self._sleep(delay)

    def _send(self, request: GenerationRequest, upload: bytes, n: int) -> Any:
        assert self._client is not None
        cfg = self._config
        image = ("image.png", upload, "image/png")  # a neutral name: ids may carry patient details
        if cfg.mode == "variation":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return self._client.images.create_variation(  # type: ignore[call-overload]
                    image=image, model=cfg.model, n=n, size=cfg.size, response_format="b64_json"
                )
        return self._client.images.edit(  # type: ignore[call-overload]
            image=image, prompt=self._prompt(request), model=cfg.model, n=n, size=cfg.size, quality=cfg.quality
        )

    # -- helpers ---------------------------------------------------------------------------------

    def _upload_bytes(self, request: GenerationRequest) -> bytes:
        assert request.source is not None
        limit = VARIATION_MAX_BYTES if self._config.mode == "variation" else EDIT_MAX_BYTES
        name = request.source_id or request.image_id
        return prepare_upload(request.source, name, max_side=self._config.upload_max_side, max_bytes=limit)

    def _decode(self, response: Any, request: GenerationRequest) -> list[bytes]:
        where = f"openai request {response._request_id or '?'} for {request.image_id}"
        items = list(response.data or [])
        if not items:
            raise GeneratorError(f"{where}: the API returned no image")
        if any(item.b64_json is None for item in items):
            raise GeneratorError(f"{where}: the API returned a URL, not base64 image data (b64_json)")
        return [decode_b64_image(item.b64_json, where) for item in items]

    def _cost(self, response: Any, images: int) -> float:
        cfg = self._config
        usage = getattr(response, "usage", None)
        per_in, per_out = cfg.usd_per_1m_input_tokens, cfg.usd_per_1m_output_tokens
        if usage is not None and per_in is not None and per_out is not None:
            return (usage.input_tokens * per_in + usage.output_tokens * per_out) / 1e6
        return images * cfg.price_per_image()

    def _parameters(self, request: GenerationRequest, response: Any, images: int, usd: float) -> dict[str, Any]:
        cfg = self._config
        usage = getattr(response, "usage", None)
        return {
            "model": cfg.model,
            "mode": cfg.mode,
            "prompt": self._prompt(request) if cfg.mode == "edit" else None,
            "size": cfg.size,
            "quality": cfg.quality if cfg.mode == "edit" else None,
            "request_id": response._request_id,
            "images_in_call": images,
            "usage": usage.model_dump(mode="json") if usage is not None else None,
            "cost_usd": round(usd / images, 6),
            "spare": False,
        }

    def _prompt(self, request: GenerationRequest) -> str:
        grade = Grade(request.grade)
        return self._config.prompt(int(grade), grade.label)

    def _fingerprint(self, request: GenerationRequest) -> str:
        cfg = self._config
        signature = {
            "source_id": request.source_id,
            "grade": int(request.grade),
            "mode": cfg.mode,
            "model": cfg.model,
            "prompt": self._prompt(request) if cfg.mode == "edit" else None,
            "size": cfg.size,
            "quality": cfg.quality if cfg.mode == "edit" else None,
            "upload_max_side": cfg.upload_max_side,
        }
        return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:16]

    def _record(
        self,
        request: GenerationRequest,
        fingerprint: str,
        status: Status,
        attempt: int,
        *,
        request_id: str | None = None,
        reason: str | None = None,
        images: int = 0,
        usd: float = 0.0,
    ) -> None:
        self._ledger.append(
            LedgerEntry(
                time=now(), image_id=request.image_id, source_id=request.source_id or "", fingerprint=fingerprint,
                status=status, attempt=attempt, request_id=request_id, reason=reason, images=images,
                cost_usd=round(usd, 6), model=self._config.model, mode=self._config.mode,
            )
        )

    def _refused_index(self) -> dict[tuple[str, str], str]:
        with self._refusals_lock:
            if self._refusals is None:
                refused = (e for e in self._ledger.entries() if e.status == "refused")
                self._refusals = {(e.image_id, e.fingerprint): e.reason or "refused" for e in refused}
            return self._refusals

    def _load_budget(self) -> Budget:
        """This generator's one budget, read from the ledger once (two copies would pay twice)."""
        with self._budget_lock:
            if self._budget is None:
                entries = self._ledger.entries()
                self._budget = Budget(
                    self._config, sum(e.images for e in entries), sum(e.cost_usd for e in entries)
                )
            return self._budget

    def _budget_message(self) -> str:
        return f"openai budget reached ({self._load_budget().describe()}); raise budget_images or budget_usd to go on"

    def _failure_message(self, request: GenerationRequest, failure: Failure, reason: str, attempt: int) -> str:
        tries = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
        rid = f", request {failure.request_id}" if failure.request_id else ""
        return f"openai: the call for {request.image_id} (source {request.source_id}) failed {tries}: {reason}{rid}"

    def _scrub(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return _KEY_SHAPED.sub("***", text)
