"""``biores-train``: LLaVA training at native, fixed and mixed resolution on transformers' Trainer.

Differently sized images meet in one batch (packed vision encoding), a sampler groups samples
by token count, labels cover answers only, checkpoints carry the processor and the resolution
config, and ``--resume_from_checkpoint last`` continues with the same steps and data order.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerState
from transformers.trainer_utils import TrainOutput

from ..errors import BioresConfigError, BioresError, BioresImageError
from ..io_utils import atomic_write_text
from ..models import checkpoint_kind, empty_model, load
from ..models.llava_checkpoints import ComposedLlavaProcessor
from ..models.qwen_vl import QwenVLTrainProcessor
from ..resolution import ResolutionConfig, draw_summary
from .args import parse_args, parse_loss_weights
from .budget import VisualTokenBudgetSampler, batch_shape, check_visual_budget
from .checkpoints import (
    LOSS_FILE,
    _finished,
    _resume_prior_loss,
    _resume_target,
    load_checkpoint_weights,
)
from .checks import check_memory, meta_model
from .compose import compose_llava, save_stock_llava
from .data import ImageListCollator, ResolutionDataset, TokenCountGroupedSampler, load_records
from .lora import apply_lora, save_lora
from .mixing import build_schedule, normalized_loss
from .packing import PackingCollator, enable_lm_packing
from .precision import apply_dtype, parameter_dtypes, weights_dtype
from .qwen_packing import SAMPLE_BOUNDS, QwenPackingCollator
from .qwen_vl import QwenVLCollator, build_qwen_vl, freeze_for_qwen
from .sharded import close_process_group, enable_cpu_fsdp, full_state_dict, is_cpu_fsdp, local_shares
from .towers import load_pretrained_tower, pretrained_tower_config

_WORD = re.compile(r"\w+|[^\w\s]")


class BioresTrainer(Trainer):
    """``Trainer`` with the token-count sampler, answer-weighted loss and a vision learning rate."""

    def __init__(
        self,
        *args: Any,
        token_sampler: Optional[TokenCountGroupedSampler] = None,
        vision_lr: Optional[float] = None,
        batch_log: Optional[Path] = None,
        loss_normalization: str = "token",
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._token_sampler = token_sampler
        self._vision_lr = vision_lr
        self._batch_log, self._loss_normalization = batch_log, loss_normalization
        self.prior_loss = (0.0, 0)  # (summed step losses, steps) of the segments before a resume

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        enable_cpu_fsdp(self)  # FSDP2 on a multi-process CPU run, as accelerate sets it up on GPUs

    def save_model(self, output_dir: Optional[str] = None, _internal_call: bool = False) -> None:
        if not is_cpu_fsdp(self):
            return super().save_model(output_dir, _internal_call)
        state = full_state_dict(self.model)  # every rank gathers; the main process writes
        if self.args.should_save:
            self._save(output_dir or self.args.output_dir, state_dict=state)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.is_world_process_zero():  # the whole run's loss so far, for train_loss after a resume
            total = self.prior_loss[0] + self._total_loss_scalar + float(self._tr_loss.item())
            folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
            atomic_write_text(
                folder / LOSS_FILE, json.dumps({"loss_sum": total, "steps": self.state.global_step}) + "\n"
            )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        model = model if model is not None else self.model
        weights = Path(resume_from_checkpoint) / "model.safetensors"
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(model, "peft_config") or not weights.is_file():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_checkpoint_weights(model, weights)  # transformers' own resume loads the saved layout unrenamed

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        return self._token_sampler if self._token_sampler is not None else super()._get_train_sampler(train_dataset)

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        if self.optimizer is None and self._vision_lr is not None:
            model = model or self.model
            vision, other = [], []
            for name, param in model.named_parameters():
                if param.requires_grad:
                    (vision if ".vision_tower." in f".{name}" else other).append(param)
            groups = [{"params": other, "lr": self.args.learning_rate}, {"params": vision, "lr": self._vision_lr}]
            self.optimizer = torch.optim.AdamW(
                [g for g in groups if g["params"]],
                lr=self.args.learning_rate,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
                weight_decay=self.args.weight_decay,
            )
            return self.optimizer
        return super().create_optimizer(model) if model is not None else super().create_optimizer()

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        labels = inputs.pop("labels")
        weights = inputs.pop("loss_weights")
        groups = inputs.pop("visual_tokens", None)
        indices = inputs.pop("indices", None)
        shape = batch_shape(inputs, groups)  # what the model is fed, for the batch log
        cu = inputs.pop(SAMPLE_BOUNDS, None)
        cu = inputs.get("cu_seq_lens_q") if cu is None else cu
        if groups is not None and cu is not None:  # a packed row: each target token carries its sample's group
            groups = torch.repeat_interleave(groups.to(cu.device), (cu[1:] - cu[:-1]).long())[None, 1:]
        outputs = model(**inputs)
        logits = outputs.logits[:, :-1].float()
        target, weight = labels[:, 1:], weights[:, 1:]
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="none"
        )
        loss = normalized_loss(ce.view_as(target), weight, groups, self._loss_normalization)
        if self._batch_log is not None and model.training and indices is not None and self.is_world_process_zero():
            with self._batch_log.open("a") as handle:
                entry = {"step": self.state.global_step, "indices": indices.tolist(), "loss": float(loss.detach())}
                entry.update(shape)
                handle.write(json.dumps(entry) + "\n")
        return (loss, outputs) if return_outputs else loss


class _IndexedDataset(torch.utils.data.Dataset):
    """Adds each sample's index (for the batch log that proves resume keeps the data order)."""

    def __init__(self, base: ResolutionDataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            item = self.base[index]
        except BioresError as exc:  # raised in a DataLoader worker: keep it one line, naming the sample
            raise type(exc)(
                f"training sample {index} ({_source(self.base.records[index])}): {_last_line(exc)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - anything else decoding a sample
            raise BioresImageError(
                f"training sample {index} ({_source(self.base.records[index])}): {type(exc).__name__}: "
                f"{_last_line(exc)}"
            ) from None
        item["index"] = index
        return item


def _source(record: Any) -> str:
    image = record.image
    return f"{len(image)} image bytes" if isinstance(image, (bytes, bytearray)) else str(image)


def _last_line(exc: BaseException) -> str:
    """The message of ``exc``; for one re-raised from a DataLoader worker, its original last line."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    last = lines[-1].strip()
    if len(lines) > 1 and ": " in last and last.split(": ", 1)[0].replace(".", "").isidentifier():
        last = last.split(": ", 1)[1]
    return last


class _IndexedCollator:
    """Wraps a collator; adds each batch's sample indices (for the batch log)."""

    def __init__(self, base: Any):
        self.base = base

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = self.base(features)
        batch["indices"] = torch.tensor([f["index"] for f in features], dtype=torch.long)
        return batch


def vocabulary_of(records: Sequence[Any]) -> list[str]:
    words: set[str] = set()
    for record in records:
        for prompt, answer, _ in record.turns:
            words.update(_WORD.findall(prompt.lower().replace("<image>", " ")))
            words.update(_WORD.findall(answer.lower()))
    return sorted(words)


def build_model_and_processor(
    model_args: Any, data_args: Any, records: Sequence[Any], seed: int, training_args: Any = None
):
    """The model and training processor for ``--model_name_or_path``: ``tiny`` (built from local
    configs), a LLaVA or Qwen2-VL family checkpoint, or a language model composed with a tower."""
    from ..models.native_llava import BioresLlavaForConditionalGeneration, BioresLlavaProcessor
    from ..tiny import build_word_tokenizer, tiny_llava_config

    kind = (
        "tiny"
        if model_args.model_name_or_path == "tiny"
        else checkpoint_kind(model_args.model_name_or_path, training=True, flag="--model_name_or_path")
    )
    if kind == "qwen_vl":
        model, processor = build_qwen_vl(model_args, data_args, training_args)
        freeze_for_qwen(model, model_args)
        return model, processor
    if kind == "lm":
        model, processor = compose_llava(model_args, data_args, seed, training_args)
        resolution = processor.resolution
    elif kind == "tiny":
        overrides = json.loads(model_args.tiny_config) if model_args.tiny_config else {}
        pretrained = pretrained_tower_config(model_args.vision_tower)
        if pretrained is not None:  # the tower's shape comes from its checkpoint
            overrides.update(
                patch_size=pretrained.patch_size,
                vision_hidden=pretrained.hidden_size,
                num_channels=pretrained.num_channels,
                image_size=pretrained.image_size,
            )
        patch = int(data_args.patch_size or overrides.get("patch_size", 16))
        if pretrained is not None and patch != pretrained.patch_size:
            raise BioresConfigError(
                f"--patch_size {patch} does not match the pretrained tower's {pretrained.patch_size}"
            )
        overrides["patch_size"] = patch
        resolution = data_args.resolution(patch)
        tokenizer = build_word_tokenizer(vocabulary_of(records))
        config = tiny_llava_config(
            len(tokenizer),
            tower="siglip" if pretrained is not None else (model_args.vision_tower or "siglip"),
            image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            resolution=resolution.to_dict(),
            **overrides,
        )
        if pretrained is not None:
            config.vision_config = pretrained
            if pretrained.model_type.startswith("clip"):
                config.vision_feature_select_strategy = "default"
        check_memory(
            meta_model(BioresLlavaForConditionalGeneration, config),
            "the --tiny_config model",
            model_args,
            training_args,
        )
        torch.manual_seed(seed)
        model = BioresLlavaForConditionalGeneration(config)
        if model_args.init == "torch":
            # transformers' N(0, 0.02) everywhere starves a from-scratch vision tower; PyTorch's
            # per-module defaults let the language model pick up image features (see the demo note)
            torch.manual_seed(seed)
            for module in model.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
            # ...except the tower's position table: nn.Embedding's N(0, 1) swamps the patch
            # embedding (|pos| ~ 8 vs a 0.1-sized grating response); trained on the fine label
            # such a tower was still at chance after 300 steps, against 100-200 steps with
            # SigLIP's own std 1/sqrt(width)
            with torch.no_grad():
                for name, module in model.model.vision_tower.named_modules():
                    if name.endswith("position_embedding") and isinstance(module, torch.nn.Embedding):
                        module.weight.normal_(0.0, module.weight.shape[-1] ** -0.5)
        elif model_args.init != "hf":
            raise BioresConfigError(f"--init must be 'torch' or 'hf', got {model_args.init!r}")
        if pretrained is not None:
            load_pretrained_tower(model, model_args.vision_tower)
        mean = std = [0.5, 0.5, 0.5]
        processor = BioresLlavaProcessor(
            tokenizer, resolution, image_mean=mean, image_std=std, image_placement=model_args.image_placement
        )
    else:  # a vision-language checkpoint: the one door of biores_plugin.models
        path = model_args.model_name_or_path
        check_memory(empty_model(path), str(path), model_args, training_args)
        model, processor = load(
            path,
            ResolutionConfig.from_flags(data_args),
            training=True,
            attn_implementation=model_args.attn_implementation,
            vision_backend=model_args.vision_backend,
            flag="--model_name_or_path",
        )
        resolution = processor.resolution
    model.config.biores = resolution.to_dict()
    model.set_vision_backend(model_args.vision_backend)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    if model_args.tune_mm_mlp_adapter:
        for name, param in model.named_parameters():
            param.requires_grad = "multi_modal_projector" in name
    elif model_args.freeze_vision_tower:
        for param in model.model.vision_tower.parameters():
            param.requires_grad = False
    return model, processor


def _mean_loss(state: Any) -> float:
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    return float(sum(losses) / len(losses)) if losses else float("nan")


def visual_tokens_seen(dataset: ResolutionDataset, sampler: Any, samples: int) -> int:
    total, epoch = 0, 0
    while samples > 0:
        order = sampler.order(epoch)
        total += sum(dataset.visual_tokens(index) for index in order[:samples])
        samples -= len(order)
        epoch += 1
    return total


def _checkpointing(model: Any) -> bool:
    return any(getattr(module, "gradient_checkpointing", False) is True for module in model.modules())


def train(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Parse flags, train, save; returns the run statistics written to ``biores_train_stats.json``."""
    model_args, data_args, training_args = parse_args(argv)
    weights = parse_loss_weights(data_args.answer_loss_weights)
    from transformers import set_seed

    set_seed(training_args.seed)
    records = load_records(data_args.data_path, data_args.image_folder, data_args.max_samples)
    if not records:
        raise BioresConfigError(f"--data_path {data_args.data_path} holds no training samples")
    model, processor = build_model_and_processor(model_args, data_args, records, training_args.seed, training_args)
    apply_dtype(model, model_args.torch_dtype)
    composed = isinstance(processor, ComposedLlavaProcessor)
    if training_args.gradient_checkpointing:
        model.config.use_cache = False
    if training_args.lora_enable:
        model = apply_lora(model, training_args)
    out = Path(training_args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = max(1, training_args.world_size)
    step_batch = training_args.per_device_train_batch_size * world * training_args.gradient_accumulation_steps
    # one optimizer step's samples are grouped together: the same order for N processes or N accumulation steps
    dataset, sampler = build_schedule(data_args, training_args, records, processor, weights, step_batch)
    budget = training_args.max_visual_tokens_per_batch
    if budget is not None:  # batches end before their image tokens pass the budget
        tokens = check_visual_budget(dataset, budget)
        sampler = VisualTokenBudgetSampler(sampler, tokens, training_args.per_device_train_batch_size, budget)
    atomic_write_text(
        out / "resolution_draws.json",
        json.dumps(
            {
                "spec": data_args.mixed_resolution or "native",
                "schedule": data_args.mixed_schedule,
                "seed": training_args.seed,
                **draw_summary(dataset.draws),
                "draws": dataset.draws,
            }
        )
        + "\n",
    )
    pad = processor.tokenizer.pad_token_id
    qwen = isinstance(processor, QwenVLTrainProcessor)
    collator: Any = QwenVLCollator(pad, model.config.image_token_id) if qwen else ImageListCollator(pad)
    if training_args.pack_sequences:  # one padding-free row per batch
        enable_lm_packing(model)
        collator = QwenPackingCollator(collator, model) if qwen else PackingCollator(collator)
    trainer = BioresTrainer(
        model=model,
        args=training_args,
        train_dataset=_IndexedDataset(dataset),
        data_collator=_IndexedCollator(collator),
        processing_class=processor,
        token_sampler=sampler,
        vision_lr=model_args.mm_vision_tower_lr,
        batch_log=out / "batches.jsonl",
        loss_normalization=data_args.mixed_loss_normalization,
    )
    start = time.time()
    resume = _resume_target(training_args.resume_from_checkpoint, training_args.output_dir)
    trainer.prior_loss = _resume_prior_loss(resume)
    if resume and _finished(resume, training_args.max_steps):
        # transformers would run one extra step when resuming from the final checkpoint
        trainer._load_from_checkpoint(resume)
        trainer.state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
        result = TrainOutput(trainer.state.global_step, _mean_loss(trainer.state), {})
        whole = trainer.prior_loss[0] / max(1, trainer.prior_loss[1])
    else:
        result = trainer.train(resume_from_checkpoint=resume)
        segment = trainer.state.global_step - trainer.prior_loss[1]
        whole = (trainer.prior_loss[0] + float(result.training_loss) * segment) / max(1, trainer.state.global_step)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    if training_args.lora_enable:
        if trainer.is_world_process_zero():
            saved = save_lora(trainer.accelerator.unwrap_model(trainer.model), out, training_args.lora_save)
            if training_args.lora_save == "merged" and composed:
                save_stock_llava(saved, processor, out, model_args.tune_mm_mlp_adapter)
            else:
                processor.save_pretrained(out)
    else:
        trainer.save_model(str(out))
        if trainer.is_world_process_zero():
            processor.save_pretrained(out)
            if composed:
                save_stock_llava(trainer.model, processor, out, model_args.tune_mm_mlp_adapter)
    shares = local_shares(trainer.model)  # a collective under torch.distributed: every rank calls it
    stats: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        forwards = trainer.state.global_step * world * training_args.gradient_accumulation_steps
        per_forward = training_args.per_device_train_batch_size
        seen = sampler.samples_in(forwards) if budget is not None else forwards * per_forward
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        stats = {
            "train_resolution_label": processor.resolution.train_resolution_label,
            "mixed_resolution": data_args.mixed_resolution,
            "global_step": trainer.state.global_step,
            "samples_seen": seen,
            "visual_tokens_seen": visual_tokens_seen(dataset, sampler, seen),
            "train_loss": float(whole),
            "segment_train_loss": float(result.training_loss),
            "first_logged_loss": losses[0] if losses else None,
            "last_logged_loss": losses[-1] if losses else None,
            "wall_seconds": time.time() - start,
            "resumed_from": str(resume) if resume else None,
            "trainable_parameters": trainable,
            "distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
            "world_size": world,
            "fsdp": bool(getattr(trainer, "is_fsdp_enabled", False)),
            "weight_share_per_rank": shares,  # share of the weights each rank holds (about 1/world when sharded)
            "gradient_checkpointing": _checkpointing(trainer.accelerator.unwrap_model(trainer.model)),
            "bf16": bool(training_args.bf16),
            "torch_dtype": weights_dtype(trainer.model),  # read from the trained parameters
            "parameter_dtypes": parameter_dtypes(trainer.model),
            "draws": draw_summary(dataset.draws),
        }
        atomic_write_text(out / "biores_train_stats.json", json.dumps(stats, indent=2) + "\n")
    return stats


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .. import register

    try:
        register()
        train(argv)
    except BioresError as exc:
        print(f"biores-train: error: {_last_line(exc)}", file=sys.stderr)
        return 2
    close_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
