"""The openai generator against a local fake of the images API, with the real ``openai`` client."""

from __future__ import annotations

import contextlib
import io
import json
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from structlog.testing import capture_logs

from medaug.adapters.generators.openai_edits import generator as openai_generator
from medaug.adapters.generators.openai_edits.config import OpenAIConfig
from medaug.adapters.generators.openai_edits.client import make_openai_client
from medaug.adapters.generators.openai_edits.generator import LEDGER_FILE, OpenAIGenerator
from medaug.adapters.generators.openai_edits.retry import retry_after
from medaug.adapters.png import decode_png
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.errors import BudgetExhausted, ConfigError, GeneratorError
from medaug.application.ports import CostEstimating, GenerationRequest
from medaug.application.services.augment import augment, plan_augmentation
from medaug.domain import Grade, PlanPolicy
from tests.conftest import png_bytes, real_record
from tests.contracts.image_generator import ImageGeneratorContract
from tests.fake_openai_server import (
    FakeOpenAI,
    garbage,
    image,
    rate_limit,
    refuse,
    server_error,
    slow,
    together,
    unauthorized,
)

KEY = "medaug-test-key-6d1f0c9b2e4a"  # not sk-shaped, so log redaction cannot hide a leak


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(key=KEY) as server:
        yield server


class SleepRecorder:
    """Stands in for time.sleep: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make(fake: FakeOpenAI, tmp_path: Path, sleeps: SleepRecorder) -> Callable[..., OpenAIGenerator]:
    def build(**overrides: Any) -> OpenAIGenerator:
        settings: dict[str, Any] = {
            "allow_external_upload": True, "api_key": KEY, "base_url": fake.base_url,
            "timeout_s": 5.0, "backoff_s": 0.01, "max_retries": 3, "upload_max_side": 64,
        }
        config = OpenAIConfig(**(settings | overrides))
        return OpenAIGenerator(make_openai_client(config), config, tmp_path / "openai", sleep=sleeps)

    return build


def requests_for(*sources: str, grade: int = 2, size: int = 32, start: int = 0) -> list[GenerationRequest]:
    return [
        GenerationRequest(image_id=f"syn-{start + i}", grade=Grade(grade), seed=start + i, source_id=source,
                          source=png_bytes(seed=sum(map(ord, source)), size=96), size=size)
        for i, source in enumerate(sources)
    ]


def ledger(generator: OpenAIGenerator) -> list[dict[str, Any]]:
    # Every generator these tests build works in tmp_path / "openai" (see the fixture above).
    folder = Path(generator._work_dir)  # noqa: SLF001 - the ledger's place is the generator's own
    return [json.loads(line) for line in (folder / LEDGER_FILE).read_text().splitlines()]


class TestOpenAIGeneratorContract(ImageGeneratorContract):
    @pytest.fixture
    def generator(self, make: Callable[..., OpenAIGenerator]) -> OpenAIGenerator:
        return make()


def test_edit_call_sends_prompt_model_and_a_png_within_limits(make, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    generator = make(quality="medium")
    result = generator.generate(requests_for("IDRiD_001", grade=3))[0]

    sent = fake.requests[0]
    assert sent.path == "/v1/images/edits"
    assert "Retinopathy grade = 3/4" in sent.fields["prompt"]
    assert (sent.fields["model"], sent.fields["quality"], sent.fields["n"]) == ("gpt-image-2.5-sunburst", "medium", "1")
    assert sent.image is not None and Image.open(io.BytesIO(sent.image)).format == "PNG"
    assert decode_png(sent.image).shape == (64, 64, 3)  # the 96 px source was downscaled to upload_max_side
    assert decode_png(result.data).shape == (32, 32, 3)
    params = result.parameters
    assert params["request_id"] == sent.request_id
    assert params["usage"]["output_tokens"] == 272 and params["model"] == "gpt-image-2.5-sunburst"
    assert "grade = 3/4" in params["prompt"] and params["cost_usd"] > 0
    assert [e["status"] for e in ledger(generator)] == ["ok"]


def test_variation_mode_calls_the_legacy_endpoint(make, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    generator = make(mode="variation", model="dall-e-2", size="256x256")
    result = generator.generate(requests_for("IDRiD_002"))[0]
    sent = fake.requests[0]
    assert sent.path == "/v1/images/variations"
    assert sent.fields["response_format"] == "b64_json" and "prompt" not in sent.fields
    assert result.parameters["prompt"] is None and result.parameters["mode"] == "variation"


def test_429_500_and_timeout_are_retried_honouring_retry_after(make, fake, sleeps) -> None:  # type: ignore[no-untyped-def]
    fake.script(rate_limit(retry_after=0.25), server_error(), slow(5.0), image())
    generator = make(timeout_s=1.0, backoff_s=0.01, max_backoff_s=1.0)
    result = generator.generate(requests_for("IDRiD_003"))[0]

    assert decode_png(result.data).shape == (32, 32, 3)
    assert fake.calls == 4
    assert sleeps.delays[0] == pytest.approx(0.25)  # Retry-After, not the backoff
    assert 0 <= sleeps.delays[1] <= 0.02 and 0 <= sleeps.delays[2] <= 0.04  # jittered, doubling
    entries = ledger(generator)
    assert [e["status"] for e in entries] == ["retry", "retry", "retry", "ok"]
    assert [e["reason"] for e in entries[:3]] == ["HTTP 429", "HTTP 500", "timeout"]


def test_retries_stop_at_max_retries(make, fake, sleeps) -> None:  # type: ignore[no-untyped-def]
    fake.script(server_error(), server_error(), server_error(), image())
    generator = make(max_retries=2)
    with pytest.raises(GeneratorError, match="syn-0 .*failed after 3 attempts: HTTP 500"):
        generator.generate(requests_for("IDRiD_004"))
    assert fake.calls == 3 and len(sleeps.delays) == 2
    assert ledger(generator)[-1]["status"] == "error"


def test_retry_after_beyond_max_backoff_stops_instead_of_waiting(make, fake, sleeps) -> None:  # type: ignore[no-untyped-def]
    fake.script(rate_limit(retry_after=600))
    with pytest.raises(GeneratorError, match="asks to wait 600 s"):
        make(max_backoff_s=30).generate(requests_for("IDRiD_005"))
    assert sleeps.delays == [] and fake.calls == 1


def test_an_undecodable_answer_is_a_clear_error_counted_as_paid(make, fake) -> None:  # type: ignore[no-untyped-def]
    fake.script(garbage())
    generator = make()
    with pytest.raises(GeneratorError, match="req_fake_0001 for syn-0: the API returned an undecodable image"):
        generator.generate(requests_for("A"))
    assert [(e["status"], e["images"]) for e in ledger(generator)] == [("error", 1)]


def test_retry_after_header_forms() -> None:
    assert retry_after({"retry-after-ms": "250"}) == pytest.approx(0.25)
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after({}) is None


def test_content_policy_refusal_is_recorded_skipped_and_never_resent(make, fake) -> None:  # type: ignore[no-untyped-def]
    fake.script(refuse(), image())
    generator = make(max_concurrency=1)
    results = generator.generate(requests_for("IDRiD_006", "IDRiD_007"))
    assert results[0].refused and "content policy" in results[0].refused and results[0].data == b""
    assert results[1].refused is None and results[1].data
    assert [e["status"] for e in ledger(generator)] == ["refused", "ok"]

    again = make().generate(requests_for("IDRiD_006", "IDRiD_007"))
    assert fake.calls == 2
    assert again[0].refused and again[1].data == results[1].data


def test_a_new_run_never_pays_twice(make, fake) -> None:  # type: ignore[no-untyped-def]
    first = make().generate(requests_for("A", "B", "C"))
    assert fake.calls == 3
    second = make().generate(requests_for("A", "B", "C", "D"))
    assert fake.calls == 4
    assert [r.data for r in second[:3]] == [r.data for r in first]


def test_images_per_call_keeps_spares_for_the_same_source(make, fake) -> None:  # type: ignore[no-untyped-def]
    generator = make(images_per_call=2, max_concurrency=1)
    results = generator.generate(requests_for("A", "A", "A"))
    assert fake.calls == 2 and [r.fields["n"] for r in fake.requests] == ["2", "2"]
    assert len({r.data for r in results}) == 3
    assert [r.parameters["spare"] for r in results] == [False, True, False]
    estimate = generator.estimate(requests_for("A", start=10))
    assert (estimate.calls, estimate.reused) == (0, 1)


def test_calls_run_concurrently_up_to_the_limit(make, fake) -> None:  # type: ignore[no-untyped-def]
    fake.script(together(2))
    results = make(max_concurrency=2).generate(requests_for("A", "B"))
    assert all(r.data for r in results)
    assert fake.max_in_flight == 2 and len(fake.served("image")) == 2


def test_image_budget_stops_cleanly_with_what_was_paid(make, fake) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BudgetExhausted, match="budget reached") as stop:
        make(budget_images=2, max_concurrency=1).generate(requests_for("A", "B", "C", "D"))
    assert fake.calls == 2
    assert [r.image_id for r in stop.value.completed] == ["syn-0", "syn-1"]
    with pytest.raises(BudgetExhausted):  # the budget spans runs: the ledger remembers
        make(budget_images=2, max_concurrency=1).generate(requests_for("C", start=2))
    assert fake.calls == 2


def test_usd_budget_uses_the_price_table(make, fake) -> None:  # type: ignore[no-untyped-def]
    generator = make(budget_usd=1.2, prices_usd={"low": 0.5}, max_concurrency=1)
    estimate = generator.estimate(requests_for("A", "B", "C"))
    assert (estimate.calls, estimate.usd) == (3, pytest.approx(1.5))
    assert any("budget will stop" in note for note in estimate.notes)
    with pytest.raises(BudgetExhausted):
        generator.generate(requests_for("A", "B", "C"))
    assert fake.calls == 2


def test_usd_budget_holds_the_dearest_price_the_api_has_billed(make, fake) -> None:  # type: ignore[no-untyped-def]
    # The fake bills 272 output tokens a call: $0.34 at $1250 per 1M, dearer than the table's $0.20.
    pricing = {"prices_usd": {"low": 0.2}, "usd_per_1m_input_tokens": 0.0, "usd_per_1m_output_tokens": 1250.0}
    generator = make(budget_usd=1.0, max_concurrency=1, **pricing)
    with pytest.raises(BudgetExhausted, match="budget reached"):
        generator.generate(requests_for("A", "B", "C", "D"))
    assert fake.calls == 2  # at the table's price a third call would have been sent, paying $1.02
    assert sum(entry["cost_usd"] for entry in ledger(generator)) == pytest.approx(0.68)
    with pytest.raises(BudgetExhausted):  # a new run starts from the ledger's price, not the table's
        make(budget_usd=1.0, max_concurrency=1, **pricing).generate(requests_for("C", start=2))
    assert fake.calls == 2


def workers_load_the_budget_together(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """Make the budget race deterministic: a worker thread that builds budget state waits for the others.

    If workers each build their own copy of the budget (as a lazy, unlocked load let them), all
    ``workers`` meet here and every copy is built, every time. When the budget is built once
    before the workers start, nothing waits (a lone worker would go on after the timeout).
    """
    caller = threading.current_thread()
    meeting = threading.Barrier(workers, timeout=5.0)

    class MeetingBudget(openai_generator.Budget):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if threading.current_thread() is not caller:
                with contextlib.suppress(threading.BrokenBarrierError):
                    meeting.wait()
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(openai_generator, "Budget", MeetingBudget)


@pytest.mark.parametrize("cap", ["images", "usd"])
@pytest.mark.parametrize(("concurrency", "seed"), [(4, 0), (4, 1), (8, 2), (8, 3)])
def test_concurrent_calls_never_pay_beyond_the_budget(make, fake, monkeypatch, cap, concurrency, seed) -> None:  # type: ignore[no-untyped-def]
    budget = 3
    caps: dict[str, Any] = (
        {"budget_images": budget} if cap == "images" else {"budget_usd": budget * 0.5 + 0.25, "prices_usd": {"low": 0.5}}
    )
    workers_load_the_budget_together(monkeypatch, concurrency)
    fake.script(together(budget))  # the paid calls only answer once they are all in flight at once
    sources = [f"S{i:02d}" for i in range(3 * concurrency)]
    random.Random(seed).shuffle(sources)
    generator = make(max_concurrency=concurrency, **caps)
    with pytest.raises(BudgetExhausted, match="budget reached") as stop:
        generator.generate(requests_for(*sources))
    assert fake.calls == budget and len(fake.served("image")) == budget
    assert fake.max_in_flight == budget
    assert len(stop.value.completed) == budget
    assert [(e["status"], e["images"]) for e in ledger(generator)] == [("ok", 1)] * budget


def test_refused_calls_give_their_budget_back_to_concurrent_calls(make, fake, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    workers_load_the_budget_together(monkeypatch, 4)
    fake.script(refuse(), refuse())  # the first two calls in flight are refused
    generator = make(budget_images=2, max_concurrency=4)
    with pytest.raises(BudgetExhausted) as stop:
        generator.generate(requests_for(*[f"S{i}" for i in range(8)]))
    assert len(fake.served("refuse")) == 2 and len(fake.served("image")) == 2 and fake.calls == 4
    completed = stop.value.completed
    assert sum(bool(r.refused) for r in completed) == 2 and sum(bool(r.data) for r in completed) == 2
    assert sorted(e["status"] for e in ledger(generator)) == ["ok", "ok", "refused", "refused"]


def test_a_failed_call_gives_its_budget_back(make, fake) -> None:  # type: ignore[no-untyped-def]
    fake.script(server_error())
    generator = make(budget_images=2, max_concurrency=4, max_retries=0)
    with pytest.raises(GeneratorError, match="HTTP 500"):
        generator.generate(requests_for("A", "B", "C", "D"))
    with pytest.raises(BudgetExhausted):
        generator.generate(requests_for("E", "F", "G", "H", start=4))
    assert len(fake.served("image")) == 2  # the failed call's hold went back; nothing was paid beyond it
    assert [e["images"] for e in ledger(generator) if e["status"] == "error"] == [0]


def test_privacy_gate_refuses_before_any_upload(make, fake) -> None:  # type: ignore[no-untyped-def]
    generator = make(allow_external_upload=False)
    with pytest.raises(ConfigError, match="allow_external_upload = true"):
        generator.generate(requests_for("A"))
    assert fake.calls == 0


def test_no_key_is_a_clear_config_error(tmp_path: Path) -> None:
    config = OpenAIConfig(allow_external_upload=True)
    with pytest.raises(ConfigError, match="needs an API key"):
        OpenAIGenerator(None, config, tmp_path).generate(requests_for("A"))


def test_estimate_sends_nothing_and_needs_neither_gate_nor_key(tmp_path: Path, fake: FakeOpenAI) -> None:
    generator = OpenAIGenerator(None, OpenAIConfig(), tmp_path)
    assert isinstance(generator, CostEstimating)
    estimate = generator.estimate([r.model_copy(update={"source": None}) for r in requests_for("A", "B")])
    assert (estimate.requests, estimate.calls, estimate.images) == (2, 2, 2)
    assert estimate.usd == pytest.approx(2 * 0.011)
    assert any("allow_external_upload is false" in note for note in estimate.notes)
    assert fake.calls == 0 and not (tmp_path / "ledger.jsonl").exists()


def test_key_never_appears_in_logs_errors_ledger_or_provenance(make, fake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake.script(rate_limit(0.01), refuse(), image(), unauthorized())
    generator = make(max_concurrency=1)
    with capture_logs() as logs:
        results = generator.generate(requests_for("A", "B"))
        with pytest.raises(GeneratorError) as failure:
            generator.generate(requests_for("C", start=5))
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake.requests)  # the key was used
    assert "HTTP 401" in str(failure.value) and KEY not in str(failure.value)
    uploads = [e for e in logs if e["event"] == "openai_upload"]
    assert {e["source_id"] for e in uploads} == {"A", "B", "C"}
    files = [p for p in (tmp_path / "openai").rglob("*") if p.suffix in (".jsonl", ".json")]
    written = "".join(p.read_text(errors="replace") for p in files)
    everything = [repr(logs), written, json.dumps([r.parameters for r in results]), str(failure.value)]
    assert all(KEY not in text for text in everything)


def test_augment_service_stores_paid_images_and_skips_refusals(make, fake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalImageStore(tmp_path / "store")
    for i, grade in enumerate([0, 0, 1, 2, 3, 4]):
        store.put(real_record(f"R{i}", grade), png_bytes(seed=i, size=32))
    plan = plan_augmentation(store, PlanPolicy.multiply(2), seed=0, augmentation="openai", generators=["openai"])
    fake.script(refuse())
    with pytest.raises(BudgetExhausted):
        augment(store, plan, {"openai": make(budget_images=3, max_concurrency=2)}, size=32)
    assert len(store.list(augmentation="openai")) == 3  # refusals cost nothing: three paid images, then the stop
    report = augment(store, plan, {"openai": make()}, size=32)
    assert (report.added, report.refused, report.already_present) == (2, 1, 3)
    assert fake.calls == 6
    record = store.list(augmentation="openai")[0]
    assert record.provenance.generator == "openai" and record.provenance.parameters["request_id"].startswith("req_fake")
