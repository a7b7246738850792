"""Residual dropout (LIMA, after Ouyang et al. 2022): dropout on what each decoder layer adds to the residual
stream, from p = 0 at the first layer rising linearly to p_max at the last. Implemented as forward hooks on
the attention and MLP blocks, so any Llama/Mistral/Qwen/GPT-2-style model works without a custom class."""

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.hooks import RemovableHandle

# Where the decoder layers are, and the names of the two residual branches inside each.
LAYER_PATHS = ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers")
BRANCHES = (("self_attn", "mlp"), ("attn", "mlp"), ("attention", "mlp"))


def schedule(num_layers: int, p_max: float) -> list[float]:
    """p for each layer: 0.0 at the first, p_max at the last, linear in between."""
    if num_layers == 1:
        return [p_max]
    return [p_max * index / (num_layers - 1) for index in range(num_layers)]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    for path in LAYER_PATHS:
        module: nn.Module | None = model
        for name in path.split("."):
            module = getattr(module, name, None)
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__} (looked at {', '.join(LAYER_PATHS)})")


def branches(layer: nn.Module) -> tuple[nn.Module, nn.Module]:
    for attention, mlp in BRANCHES:
        if hasattr(layer, attention) and hasattr(layer, mlp):
            return getattr(layer, attention), getattr(layer, mlp)
    raise ValueError(f"cannot find the attention and MLP blocks of {type(layer).__name__}")


Hook = Callable[[nn.Module, tuple, torch.Tensor | tuple], torch.Tensor | tuple]


def dropout_hook(p: float) -> Hook:
    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor | tuple) -> torch.Tensor | tuple:
        if not module.training or p == 0.0:
            return output
        if isinstance(output, tuple):  # attention returns (hidden, weights, ...)
            return (F.dropout(output[0], p, training=True), *output[1:])
        return F.dropout(output, p, training=True)

    return hook


def add_residual_dropout(model: nn.Module, p_max: float) -> list[RemovableHandle]:
    """Hook dropout onto both residual branches of every decoder layer; returns the handles (to remove)."""
    layers = decoder_layers(model)
    handles = []
    for layer, p in zip(layers, schedule(len(layers), p_max), strict=True):
        for block in branches(layer):
            handles.append(block.register_forward_hook(dropout_hook(p)))
    return handles
