"""diffusers' CogVideoX LoRA loader, reading VideoX-Fun's LoRA files too.

``CogVideoXFunLoraLoaderMixin`` is diffusers' ``CogVideoXLoraLoaderMixin`` (``load_lora_weights``,
``set_adapters``, ``fuse_lora`` / ``unfuse_lora``, ``unload_lora_weights``, ``delete_adapters``, ...) with
one change: every file goes through ``cogfun.models.lora_conversion.convert_lora_state_dict`` before diffusers
injects it, so VideoX-Fun's kohya-style (``lora_unet__...`` + ``.alpha``) and peft-style (no ``transformer.``
prefix) files load like diffusers' own, alpha kept, unplaceable keys reported, misshaped weights refused::

    pipe.load_lora_weights("lora/", adapter_name="style")            # diffusers / finetrainers / cogfun export
    pipe.load_lora_weights("videox_fun_lora.safetensors", adapter_name="vx")
    pipe.load_lora_weights("peft_lora.safetensors", network_alpha=32)  # VideoX-Fun peft export: no alpha stored
    pipe.set_adapters(["style", "vx"], adapter_weights=[1.0, 0.5])
    pipe.unload_lora_weights()
"""

from __future__ import annotations

import os
import warnings

import torch
from diffusers.loaders import CogVideoXLoraLoaderMixin
from diffusers.loaders.lora_pipeline import _LOW_CPU_MEM_USAGE_DEFAULT_LORA

from ..models.lora_conversion import LoraConversion, convert_lora_state_dict

__all__ = ["CogVideoXFunLoraLoaderMixin"]


class CogVideoXFunLoraLoaderMixin(CogVideoXLoraLoaderMixin):
    """diffusers' CogVideoX LoRA loader mixin, every file converted by ``convert_lora_state_dict``."""

    def load_lora_weights(
        self,
        pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, torch.Tensor],
        adapter_name: str | None = None,
        hotswap: bool = False,
        network_alpha: float | None = None,
        **kwargs,
    ) -> LoraConversion:
        """Load a LoRA into the transformer (diffusers' ``load_lora_weights``, any supported layout).

        Args:
            pretrained_model_name_or_path_or_dict: a folder (``pytorch_lora_weights.safetensors``), a file
                (``weight_name=`` for a folder holding another name) or a state dict.
            adapter_name: name for ``set_adapters`` / ``delete_adapters`` (default ``default_<n>``).
            hotswap: diffusers' hot swap of an already loaded adapter.
            network_alpha: alpha of a file that stores none (VideoX-Fun's peft export); None = alpha equals
                rank (scale 1), as the reference applies such files.
            **kwargs: diffusers' ``lora_state_dict`` options (``weight_name``, ``low_cpu_mem_usage``, ...).

        Returns:
            The ``LoraConversion`` (keys, metadata, ``unplaced`` keys). Unplaced keys also raise a warning.
        """
        low_cpu_mem_usage = kwargs.pop("low_cpu_mem_usage", _LOW_CPU_MEM_USAGE_DEFAULT_LORA)
        if isinstance(pretrained_model_name_or_path_or_dict, dict):  # diffusers' rule: never edit the caller's dict
            pretrained_model_name_or_path_or_dict = pretrained_model_name_or_path_or_dict.copy()
        kwargs["return_lora_metadata"] = True
        state_dict, metadata = self.lora_state_dict(pretrained_model_name_or_path_or_dict, **kwargs)

        lora = convert_lora_state_dict(state_dict, self.transformer, metadata=metadata, network_alpha=network_alpha)
        if lora.unplaced:
            warnings.warn(
                f"{len(lora.unplaced)} LoRA keys match no module of the transformer and were not loaded: "
                f"{lora.unplaced}",
                stacklevel=2,
            )
        if not lora.state_dict:
            raise ValueError(
                "no LoRA weights of this file fit the transformer; expected diffusers keys "
                "(transformer.<module>.lora_A.weight), VideoX-Fun kohya keys (lora_unet__<module>.lora_down.weight) "
                "or peft keys (<module>.lora_A.weight)"
            )
        self.load_lora_into_transformer(
            lora.state_dict,
            transformer=self.transformer,
            adapter_name=adapter_name,
            metadata=lora.metadata,
            _pipeline=self,
            low_cpu_mem_usage=low_cpu_mem_usage,
            hotswap=hotswap,
        )
        return lora
