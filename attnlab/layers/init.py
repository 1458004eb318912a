"""The Transformer's initialisation (Vaswani et al. 2017, as the reference code does it).

    W ~ U(-a, a),  a = sqrt(6 / (fan_in + fan_out))     Xavier-uniform, every matrix
    b = 0                                               every bias
    E ~ N(0, d^-1/2)                                    embeddings, so that E * sqrt(d) has unit scale
"""

from __future__ import annotations

from torch import nn


def xavier_init(model: nn.Module, d_model: int) -> None:
    """Initialise every ``nn.Linear`` and ``nn.Embedding`` of ``model`` as in the docstring."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=d_model**-0.5)
