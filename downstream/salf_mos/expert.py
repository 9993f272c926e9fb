"""SALF-MOS (Agrawal et al., 2025) as an s3prl downstream expert: a 1,574-parameter head on frozen SSL features.

The upstream stays frozen: run without ``-f``. The paper feeds one SSL layer; ``-s last_hidden_state``
(the registered variant ``salf_mos``) gives it the upstream's output, and leaving ``-s`` out (variant
``salf_mos_wsum``) gives it s3prl's learnable weighted sum of all hidden states instead. Loss: L1 as in
the paper (``modelrc.loss: l1``; ``mse`` also). The network: :mod:`distilmos.models.salf_mos`.
"""

import torch
import torch.nn.functional as F

from distilmos.errors import ConfigError
from distilmos.models.salf_mos import SALFMOSModel
from distilmos.train.expert_base import MOSExpert
from distilmos.train.plugin import register_schedulers

LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}

# A config naming OneCycleLR must resolve under a stock s3prl runner too: the runner imports this module
# before it builds the scheduler.
register_schedulers()


class DownstreamExpert(MOSExpert):
    """SALF-MOS: frame-wise convolutions over the feature axis -> stacked latent features -> MOS."""

    name = "salf_mos"
    MODELRC = {
        "loss": "l1",  # or mse
        "channels": 2,
        "depth": 4,
        "head_bias": False,
        "allow_fine_tune": False,  # SALF-MOS is defined on frozen features
    }

    def __init__(
        self,
        upstream_dim: int,
        downstream_expert: dict,
        expdir: str,
        upstream_trainable: bool = False,
        upstream_feature_selection: str = "hidden_states",
        **kwargs,
    ):
        super().__init__(upstream_dim, downstream_expert, expdir, **kwargs)
        # SALF-MOS is defined on frozen features: fine-tuning the upstream under a 1,574-parameter head is
        # another model (and 10^4-10^5 times the trained parameters), so -f is refused unless asked for.
        if upstream_trainable and not self.modelrc["allow_fine_tune"]:
            raise ConfigError(
                "salf_mos trains on frozen upstream features: drop -f (--upstream_trainable) from run_downstream.py "
                "(or set downstream_expert.modelrc.allow_fine_tune: true to fine-tune the upstream anyway)"
            )
        loss = self.modelrc["loss"]
        if loss not in LOSSES:
            raise ConfigError(
                f"unknown salf_mos loss {loss!r} in downstream_expert.modelrc.loss; choose from {', '.join(LOSSES)}"
            )
        self.loss_fn = LOSSES[loss]
        self.model = SALFMOSModel(
            upstream_dim,
            channels=int(self.modelrc["channels"]),
            depth=int(self.modelrc["depth"]),
            head_bias=bool(self.modelrc["head_bias"]),
        )
        n_params = sum(p.numel() for p in self.model.parameters())
        print(f"[{self.name}] {n_params:,} parameters on {upstream_dim}-dim features ({upstream_feature_selection})")
        self.preflight()

    def losses(self, out, batch, lengths) -> dict[str, torch.Tensor]:
        loss = self.loss_fn(out["pred"], batch.scores.to(out["pred"].device))
        return {"mos_loss": loss, "loss": loss}
