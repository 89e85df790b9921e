"""LoRA files of every source in diffusers' layout: one converter, alpha kept, nothing dropped silently.

CogVideoX-Fun LoRAs come in three layouts (all map onto the same ``nn.Linear`` modules of the transformer):

================  ==========================================================  ==============================
source            keys                                                        alpha
================  ==========================================================  ==============================
diffusers /       ``transformer.<module>.lora_A.weight`` / ``lora_B.weight``  ``lora_adapter_metadata`` in
finetrainers                                                                  the safetensors header
VideoX-Fun        ``lora_unet__<module with . as _>.lora_down.weight`` /      ``<name>.alpha`` tensor per
(kohya network)   ``lora_up.weight``                                          module (absent or 0 = rank)
VideoX-Fun        ``[diffusion_model.]<module>.lora_A[.default].weight`` /    not stored (the reference
(peft)            ``lora_B``                                                  applies such files at alpha =
                                                                              rank; pass ``network_alpha``)
================  ==========================================================  ==============================

``convert_lora_state_dict`` maps any of them to diffusers' peft layout (``transformer.<module>.lora_A.weight``,
``lora_A``: (rank, in_features), ``lora_B``: (out_features, rank)) plus the adapter metadata diffusers turns into
the ``LoraConfig`` (rank and alpha per module: the update is ``alpha / rank * B @ A``). Keys it cannot place on a
module of the model are returned (never dropped silently); a weight whose shape does not fit its module raises
a ``ValueError`` naming the key and both shapes. ``CogVideoXFunPipeline.load_lora_weights`` runs every file
through it (``cogfun.pipelines.lora_loading``).

``save_lora_adapter`` writes a peft adapter the diffusers way (``pytorch_lora_weights.safetensors``) with its
``LoraConfig`` (rank, alpha, targets) in the file's ``lora_adapter_metadata``, so diffusers restores alpha on
load; without it every loader assumes alpha = rank (a rank-64 / alpha-32 LoRA would act at twice its scale).

``check_lora_targets`` is the training side: peft accepts a ``target_modules`` list as long as *one* name
matches, so a wrong name (VideoX-Fun's documented ``ff.0`` / ``ff.2``: the modules are ``ff.net.0.proj`` /
``ff.net.2``) silently trains less than asked; here every name must match a module.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import torch

__all__ = [
    "LoraConversion",
    "check_lora_targets",
    "convert_lora_state_dict",
    "lora_targets_matching",
    "save_lora_adapter",
]

#: Key prefixes stripped before the module path: diffusers' component name, VideoX-Fun's peft export, peft's
#: ``PeftModel`` wrapper.
_PREFIXES = ("transformer.", "diffusion_model.", "base_model.model.")
#: VideoX-Fun's kohya-style prefix: ``"lora_unet" + "." + module path`` with every "." written "_" (the
#: transformer is the network's root module, hence the double underscore in ``lora_unet__transformer_blocks``).
_KOHYA_PREFIX = "lora_unet_"
#: Key endings -> role: the down projection A, the up projection B, or the alpha scalar.
_SUFFIXES = {
    ".lora_A.weight": "A",
    ".lora_A.default.weight": "A",
    ".lora_down.weight": "A",
    ".lora_B.weight": "B",
    ".lora_B.default.weight": "B",
    ".lora_up.weight": "B",
    ".alpha": "alpha",
}


@dataclasses.dataclass
class LoraConversion:
    """A LoRA in diffusers' layout.

    Attributes:
        state_dict: ``{prefix}.<module>.lora_A.weight`` (rank, in) and ``...lora_B.weight`` (out, rank).
        metadata: diffusers' packed adapter metadata (``{prefix}.r``, ``{prefix}.lora_alpha``,
            ``{prefix}.rank_pattern``, ``{prefix}.alpha_pattern``, ``{prefix}.target_modules``, ...): what
            ``load_lora_adapter(..., metadata=...)`` builds the ``LoraConfig`` from.
        unplaced: keys of the input that map to no module of the model (or lack their A/B partner).
        source: ``"diffusers"``, ``"kohya"`` or ``"peft"`` (the layout of the input; mixed inputs name the last).
    """

    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] | None
    unplaced: list[str]
    source: str


def _split_key(key: str) -> tuple[str, str, str] | None:
    """``(module part, role, source)`` of a LoRA key; role ``"other"`` keeps diffusers-only tensors (DoRA
    magnitudes, LoRA biases) as they are. None for keys that are no LoRA tensor at all."""
    source = "diffusers" if key.startswith("transformer.") else "peft"
    if key.startswith(_KOHYA_PREFIX) or ".lora_down." in key or ".lora_up." in key:
        source = "kohya"
    for suffix, role in _SUFFIXES.items():
        if key.endswith(suffix):
            return key[: -len(suffix)], role, source
    if ".lora_" in key and source == "diffusers":
        return key.split(".lora_", 1)[0], "other", source
    return None


def _module_path(raw: str, modules: dict[str, torch.nn.Module], underscored: dict[str, str]) -> str | None:
    for prefix in _PREFIXES:
        if raw.startswith(prefix):
            raw = raw[len(prefix):]
            break
    if raw.startswith(_KOHYA_PREFIX):
        return underscored.get(raw[len(_KOHYA_PREFIX):].lstrip("_"))
    return raw if raw in modules else None


def _linear_shape(module: torch.nn.Module) -> tuple[int, int] | None:
    """(out_features, in_features) of a Linear-like module (a peft-wrapped one included)."""
    base = getattr(module, "base_layer", module)
    weight = getattr(base, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        return None
    return int(weight.shape[0]), int(weight.shape[1])


def _check_shape(key: str, tensor: torch.Tensor, expected: tuple[int, int], module: str) -> None:
    if tuple(tensor.shape) != expected:
        raise ValueError(
            f"LoRA weight {key!r} has shape {tuple(tensor.shape)} but module {module!r} needs {expected} "
            f"(lora_A: (rank, in_features), lora_B: (out_features, rank)); the LoRA was trained for another "
            f"model size or variant: load it into the model it was trained on"
        )


def convert_lora_state_dict(
    state_dict: dict[str, torch.Tensor],
    model: torch.nn.Module,
    metadata: dict[str, Any] | None = None,
    network_alpha: float | None = None,
    prefix: str = "transformer",
) -> LoraConversion:
    """Map a LoRA state dict of any supported layout onto ``model``'s modules, in diffusers' peft layout.

    Args:
        state_dict: the file's tensors (diffusers / finetrainers, VideoX-Fun kohya-style or VideoX-Fun peft).
        model: the transformer the LoRA is for (its module names resolve kohya's ``_``-joined paths, its
            weight shapes are checked).
        metadata: diffusers' packed adapter metadata read from the file (``lora_state_dict(...,
            return_lora_metadata=True)``); kept as it is when present.
        network_alpha: alpha of files that store none (VideoX-Fun's peft export: its ``--network_alpha``);
            None = alpha equals rank, as the reference's ``merge_lora`` and diffusers apply such files.
        prefix: component name of the output keys and metadata.

    Returns:
        A ``LoraConversion``; ``unplaced`` lists every input key that found no module.

    Raises:
        ValueError: a weight whose shape does not fit its module (naming the key and both shapes), or
            ``network_alpha`` for a file whose metadata already stores alpha.
    """
    from diffusers.utils.peft_utils import get_peft_kwargs

    modules = dict(model.named_modules())
    underscored = {name.replace(".", "_"): name for name in modules if name}
    file_metadata = {k: v for k, v in (metadata or {}).items() if k.startswith(f"{prefix}.")} or None
    if file_metadata is not None and network_alpha is not None:
        raise ValueError(
            "this LoRA file stores its rank and alpha in its metadata; drop network_alpha (it is for files "
            "without alpha, such as VideoX-Fun's peft export)"
        )

    parts: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}  # module -> role -> (input key, tensor)
    unplaced: list[str] = []
    source = "diffusers"
    for key, tensor in state_dict.items():
        split = _split_key(key)
        module = None if split is None else _module_path(split[0], modules, underscored)
        if module is None:
            unplaced.append(key)
            continue
        _, role, source = split
        role = role if role != "other" else key.split(".lora_", 1)[1]
        parts.setdefault(module, {})[role] = (key, tensor)

    converted: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    for module, roles in parts.items():
        if "A" not in roles or "B" not in roles:
            unplaced.extend(key for key, _ in roles.values())
            continue
        shape = _linear_shape(modules[module])
        if shape is None:
            unplaced.extend(key for key, _ in roles.values())
            continue
        out_features, in_features = shape
        (key_a, down), (key_b, up) = roles["A"], roles["B"]
        rank = int(down.shape[0]) if down.ndim == 2 else -1
        _check_shape(key_a, down, (rank, in_features), module)
        _check_shape(key_b, up, (out_features, rank), module)
        converted[f"{prefix}.{module}.lora_A.weight"] = down
        converted[f"{prefix}.{module}.lora_B.weight"] = up
        for role, (_, tensor) in roles.items():
            if role not in ("A", "B", "alpha"):
                converted[f"{prefix}.{module}.lora_{role}"] = tensor
        # diffusers' rank/alpha pattern keys ("^" anchors the module path at the start, as diffusers does)
        ranks[f"^{module}.lora_B.weight"] = rank
        alpha = float(roles["alpha"][1]) if "alpha" in roles else 0.0
        if alpha == 0.0:  # kohya: no alpha (or 0) means alpha = rank, scale 1
            alpha = float(network_alpha) if network_alpha is not None else float(rank)
        alphas[f"^{module}.alpha"] = alpha

    if file_metadata is not None or not converted:
        packed = file_metadata
    else:
        peft_layout = {k[len(prefix) + 1:]: v for k, v in converted.items()}
        kwargs = get_peft_kwargs(ranks, network_alpha_dict=alphas, peft_state_dict=peft_layout, is_unet=True)
        kwargs["target_modules"] = sorted(kwargs["target_modules"])
        packed = {f"{prefix}.{k}": v for k, v in kwargs.items()}
    return LoraConversion(converted, packed, unplaced, source)


def lora_targets_matching(model: torch.nn.Module, targets: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """For each ``target_modules`` name, the model's modules peft would adapt with it (peft's rule: the
    module path equals the name or ends with ``"." + name``)."""
    names = [name for name, _ in model.named_modules() if name]
    return {t: [n for n in names if n == t or n.endswith(f".{t}")] for t in targets}


def check_lora_targets(model: torch.nn.Module, targets: list[str] | tuple[str, ...]) -> None:
    """Raise a ``ValueError`` naming every target that matches no module of ``model`` (peft itself only
    fails when none matches), with the closest module names."""
    unmatched = [t for t, found in lora_targets_matching(model, targets).items() if not found]
    if unmatched:
        leaves = sorted({".".join(n.split(".")[-3:]) for n, m in model.named_modules() if _linear_shape(m)})
        hints = {t: difflib.get_close_matches(t, leaves, n=2, cutoff=0.3) for t in unmatched}
        raise ValueError(
            f"LoRA target modules {unmatched} match no module of the transformer (closest: {hints}); name "
            f"modules by their path suffix, e.g. 'to_q' or 'ff.net.0.proj', or use a preset "
            f"(cogfun.training.config.LORA_TARGET_PRESETS)"
        )


def save_lora_adapter(model: torch.nn.Module, folder, adapter_name: str = "default") -> None:
    """Write ``model``'s peft adapter as ``folder/pytorch_lora_weights.safetensors`` (diffusers' layout, keys
    ``transformer.<module>.lora_A.weight``), its ``LoraConfig`` (rank, alpha, patterns, targets) in the metadata.

    Args:
        model: a transformer with a peft adapter (``add_adapter`` / ``load_lora_adapter``).
        folder: output folder (created).
        adapter_name: the adapter to write.
    """
    from diffusers import CogVideoXPipeline
    from peft.utils import get_peft_model_state_dict

    CogVideoXPipeline.save_lora_weights(
        folder,
        transformer_lora_layers=get_peft_model_state_dict(model, adapter_name=adapter_name),
        transformer_lora_adapter_metadata=model.peft_config[adapter_name].to_dict(),
        safe_serialization=True,
    )
