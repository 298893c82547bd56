"""The latent-diffusion generator on tiny random Stable Diffusion components built here from
configs (no file from outside): LoRA training, exact resume, variations, samples, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from medaug.adapters.generators.checkpointing import list_checkpoints
from medaug.adapters.generators.latent_diffusion.components import build_components, save_components
from medaug.adapters.generators.latent_diffusion.config import LatentDiffusionConfig
from medaug.adapters.generators.latent_diffusion.generator import LatentDiffusionGenerator
from medaug.adapters.generators.latent_diffusion.training import LatentDiffusionTrainer
from medaug.application.errors import ConfigError, GeneratorError
from medaug.application.ports import GenerationRequest, LabelledImage, NullProgress
from medaug.domain import Grade
from tests.conftest import png_bytes
from tests.contracts.image_generator import ImageGeneratorContract
from tests.fakes import KillAfter

SIZE = 32


@pytest.fixture(autouse=True)
def one_torch_thread():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sd_folder(root: Path, seed: int = 0) -> Path:
    """A diffusers Stable Diffusion folder of tiny random components (tokenizer written here)."""
    folder = root / f"sd-{seed}"
    save_components(build_components("tiny", root / f"parts-{seed}", seed=seed), folder)
    return folder


def images(count: int = 6, size: int = SIZE) -> list[LabelledImage]:
    return [LabelledImage(image_id=f"r{i}", grade=Grade(i % 5), data=png_bytes(seed=i, size=size)) for i in range(count)]


def config(weights: Path, **overrides: Any) -> LatentDiffusionConfig:
    return LatentDiffusionConfig(profile="cpu-smoke", weights=weights, device="cpu", **overrides)


def trainer(weights: Path, root: Path, seed: int = 0, **overrides: Any) -> LatentDiffusionTrainer:
    settings = config(weights, **overrides)
    return LatentDiffusionTrainer(
        settings.resolve(), root, weights=settings.weights_source(), seed=seed, device="cpu", profile="cpu-smoke"
    )


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sd_folder(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def trained(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lora")
    trainer(weights, root).train(images(), progress=NullProgress())
    return root


def _lora(root: Path) -> dict[str, torch.Tensor]:
    return load_file(str(list_checkpoints(root)[-1] / "lora.safetensors"))


def test_lora_training_writes_checkpoints_and_moves_the_adapter(trained: Path) -> None:
    assert [p.name for p in list_checkpoints(trained)] == ["step-000002", "step-000004"]
    lora = _lora(trained)
    up = [v for k, v in lora.items() if "lora_B" in k]
    assert up and all(v.abs().sum() > 0 for v in up)  # peft starts lora_B at zero: training moved it
    assert (list_checkpoints(trained)[-1] / "optimizer.safetensors").is_file()


def test_a_killed_run_resumes_to_the_weights_of_an_unbroken_one(weights: Path, tmp_path: Path) -> None:
    data = images()
    trainer(weights, tmp_path / "straight", train_steps=5).train(data, progress=NullProgress())
    with pytest.raises(KeyboardInterrupt):
        trainer(weights, tmp_path / "killed", train_steps=5).train(data, progress=KillAfter(3))  # type: ignore[arg-type]
    assert [p.name for p in list_checkpoints(tmp_path / "killed")] == ["step-000002"]
    result = trainer(weights, tmp_path / "killed", train_steps=5).train(data, progress=NullProgress())
    assert result.steps == 5
    straight, killed = _lora(tmp_path / "straight"), _lora(tmp_path / "killed")
    assert straight.keys() == killed.keys() and all(torch.equal(straight[k], killed[k]) for k in straight)


def test_a_resumed_run_keeps_the_seed_it_started_with(weights: Path, tmp_path: Path) -> None:
    data = images()
    trainer(weights, tmp_path / "straight", seed=4, train_steps=3).train(data, progress=NullProgress())
    with pytest.raises(KeyboardInterrupt):
        trainer(weights, tmp_path / "killed", seed=4, train_steps=3).train(data, progress=KillAfter(3))  # type: ignore[arg-type]
    assert [p.name for p in list_checkpoints(tmp_path / "killed")] == ["step-000002"]
    trainer(weights, tmp_path / "killed", seed=9, train_steps=3).train(data, progress=NullProgress())
    straight, killed = _lora(tmp_path / "straight"), _lora(tmp_path / "killed")
    assert all(torch.equal(straight[k], killed[k]) for k in straight)


def test_another_seed_trains_other_weights(weights: Path, trained: Path, tmp_path: Path) -> None:
    trainer(weights, tmp_path, seed=3).train(images(), progress=NullProgress())
    ours, theirs = _lora(trained), _lora(tmp_path)
    assert any(not torch.equal(ours[k], theirs[k]) for k in ours)


def test_prior_preservation_draws_class_images_once_and_trains(weights: Path, tmp_path: Path) -> None:
    result = trainer(weights, tmp_path, prior_preservation=True, train_steps=2).train(images(), progress=NullProgress())
    assert result.steps == 2 and result.final_loss is not None
    assert len(list(tmp_path.glob("prior-*.safetensors"))) == 1


class TestVariationMode(ImageGeneratorContract):
    @pytest.fixture
    def generator(self, weights: Path, trained: Path) -> LatentDiffusionGenerator:
        return LatentDiffusionGenerator(config(weights, strength=0.6), trained, device="cpu")


class TestSampleMode(ImageGeneratorContract):
    @pytest.fixture
    def generator(self, weights: Path, trained: Path) -> LatentDiffusionGenerator:
        return LatentDiffusionGenerator(config(weights, mode="sample"), trained, device="cpu")


def _request(seed: int, grade: int = 3, source: bytes | None = None) -> GenerationRequest:
    return GenerationRequest(image_id=f"s{seed}", grade=Grade(grade), seed=seed, size=SIZE,
                             source_id="r1" if source else None, source=source)


def test_provenance_names_weights_lora_prompt_strength_and_seed(weights: Path, trained: Path) -> None:
    generator = LatentDiffusionGenerator(config(weights, strength=0.6), trained, device="cpu")
    parameters = generator.generate([_request(5, source=png_bytes(seed=1, size=SIZE))])[0].parameters
    assert len(parameters["weights_sha256"]) == 16 and len(parameters["lora_sha256"]) == 16
    assert parameters["lora_checkpoint"] == "step-000004"
    assert parameters["prompt"] == "a fundus photograph with severe diabetic retinopathy"
    assert (parameters["strength"], parameters["seed"], parameters["source"]) == (0.6, 5, "r1")


def test_a_grade_prompt_changes_the_image(weights: Path, trained: Path) -> None:
    generator = LatentDiffusionGenerator(config(weights, mode="sample"), trained, device="cpu")
    first, other = generator.generate([_request(1, grade=0), _request(1, grade=4)])
    assert first.data != other.data


def test_no_weights_set_says_what_to_put_where() -> None:
    with pytest.raises(ConfigError, match="weights: not set; download a diffusers Stable Diffusion folder"):
        LatentDiffusionConfig().weights_source()


def test_a_hub_id_needs_allow_hub() -> None:
    with pytest.raises(ValueError, match="allow_hub = true"):
        LatentDiffusionConfig(hub_id="stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert LatentDiffusionConfig(hub_id="x/y", allow_hub=True).weights_source() == ("x/y", False)


def test_a_missing_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no Stable Diffusion weights folder there; put a diffusers") as caught:
        trainer(tmp_path / "nowhere", tmp_path / "lora").train(images(), progress=NullProgress())
    assert "\n" not in str(caught.value) and str(tmp_path / "nowhere") in str(caught.value)


def test_a_folder_that_is_not_a_stable_diffusion_layout_names_the_missing_file(weights: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"broken/unet/config\.json: missing"):
        trainer(broken, tmp_path / "lora").train(images(), progress=NullProgress())


def test_a_lora_of_another_base_model_is_one_line(trained: Path, tmp_path: Path) -> None:
    other = sd_folder(tmp_path, seed=1)
    generator = LatentDiffusionGenerator(config(other), trained, device="cpu")
    with pytest.raises(ConfigError, match="LoRA checkpoint of another base model"):
        generator.generate([_request(1, source=png_bytes(seed=1, size=SIZE))])
    with pytest.raises(ConfigError, match="LoRA checkpoint of another base model"):
        trainer(other, trained).train(images(), progress=NullProgress())


def test_a_store_smaller_than_the_pipeline_is_one_line_before_training(weights: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"store images are 16x16 px .* smaller than .* resolution 32 px"):
        trainer(weights, tmp_path).train(images(size=16), progress=NullProgress())
    assert not list_checkpoints(tmp_path)


def test_no_lora_yet_says_how_to_train(weights: Path, tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="medaug generator train latent-diffusion"):
        LatentDiffusionGenerator(config(weights), tmp_path, device="cpu").generate([_request(1)])


def test_cuda_out_of_memory_names_the_setting_to_lower(weights: Path, trained: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import medaug.adapters.generators.latent_diffusion.generator as module

    def exhausted(*args: Any, **kwargs: Any) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(module, "run_pipeline", exhausted)
    generator = LatentDiffusionGenerator(config(weights), trained, device="cpu")
    with pytest.raises(ConfigError, match="lower generators.latent_diffusion.generate_batch_size"):
        generator.generate([_request(1, source=png_bytes(seed=1, size=SIZE))])


def test_learned_grade_tokens_train_resume_exactly_and_generate(weights: Path, tmp_path: Path) -> None:
    data = images()
    trainer(weights, tmp_path / "straight", grade_tokens=True, train_steps=5).train(data, progress=NullProgress())
    with pytest.raises(KeyboardInterrupt):
        trainer(weights, tmp_path / "killed", grade_tokens=True, train_steps=5).train(data, progress=KillAfter(3))  # type: ignore[arg-type]
    trainer(weights, tmp_path / "killed", grade_tokens=True, train_steps=5).train(data, progress=NullProgress())
    tokens = [load_file(str(list_checkpoints(tmp_path / run)[-1] / "tokens.safetensors"))["embeddings"]
              for run in ("straight", "killed")]
    assert tokens[0].shape[0] == 5 and torch.equal(tokens[0], tokens[1])
    assert all(torch.equal(a, b) for a, b in zip(_lora(tmp_path / "straight").values(), _lora(tmp_path / "killed").values(), strict=True))
    first = load_file(str(list_checkpoints(tmp_path / "straight")[0] / "tokens.safetensors"))["embeddings"]
    assert not torch.equal(first, tokens[0])  # the embeddings train
    generator = LatentDiffusionGenerator(config(weights, grade_tokens=True), tmp_path / "straight", device="cpu")
    result = generator.generate([_request(2, grade=3, source=png_bytes(seed=1, size=SIZE))])[0]
    assert result.parameters["prompt"] == "a fundus photograph with <dr-grade-3> severe diabetic retinopathy"


def test_the_grade_token_names_agree() -> None:
    from medaug.adapters.generators.latent_diffusion.components import GRADE_TOKENS
    from medaug.adapters.generators.latent_diffusion.config import GRADE_TOKEN

    assert GRADE_TOKENS == tuple(GRADE_TOKEN.format(grade) for grade in range(5))
