"""The SSL-MOS baseline as an s3prl downstream expert.

It needs the upstream's last layer, not s3prl's default weighted sum of all layers: run it with
``-s last_hidden_state`` (or ``-l -1``). Loss: L1 as in the original (``modelrc.loss: l1``; ``mse`` also).
"""

import torch
import torch.nn.functional as F

from distilmos.errors import ConfigError
from distilmos.models.ssl_mos import SSLMOSModel
from distilmos.train.expert_base import MOSExpert
from distilmos.train.plugin import register_schedulers

LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}

# The config's OneCycleLR must resolve under a stock s3prl runner too: the runner imports this module
# before it builds the scheduler.
register_schedulers()


class DownstreamExpert(MOSExpert):
    """SSL-MOS: mean-pooled last-layer features -> Linear -> MOS."""

    name = "ssl_mos"
    MODELRC = {
        "loss": "l1",  # or mse
        "allow_weighted_sum": False,  # SSL-MOS reads the last layer
    }

    def __init__(
        self,
        upstream_dim: int,
        downstream_expert: dict,
        expdir: str,
        upstream_feature_selection: str = "last_hidden_state",
        upstream_layer_selection: int = None,
        **kwargs,
    ):
        super().__init__(upstream_dim, downstream_expert, expdir, **kwargs)
        last_layer = upstream_feature_selection == "last_hidden_state" or upstream_layer_selection == -1
        if not last_layer and not self.modelrc["allow_weighted_sum"]:
            raise ConfigError(
                "ssl_mos uses the upstream's last layer: add -s last_hidden_state (or -l -1) to run_downstream.py "
                "(or set downstream_expert.modelrc.allow_weighted_sum: true to use the featurizer's weighted sum)"
            )
        loss = self.modelrc["loss"]
        if loss not in LOSSES:
            raise ConfigError(f"unknown ssl_mos loss {loss!r}; choose from {', '.join(LOSSES)}")
        self.loss_fn = LOSSES[loss]
        self.model = SSLMOSModel(upstream_dim)
        self.preflight()

    def losses(self, out, batch, lengths) -> dict[str, torch.Tensor]:
        loss = self.loss_fn(out["pred"], batch.scores.to(out["pred"].device))
        return {"mos_loss": loss, "loss": loss}
