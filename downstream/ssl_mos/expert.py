"""The SSL-MOS baseline as an s3prl downstream expert.

It needs the upstream's last layer, not s3prl's default weighted sum of all layers: run it with
``-s last_hidden_state`` (or ``-l -1``). Loss: L1 as in the original (``modelrc.loss: l1``; ``mse`` also).
"""

from distilmos.errors import ConfigError
from distilmos.models.ssl_mos import SSLMOSModel
from distilmos.train.expert_base import RegressionExpert


class DownstreamExpert(RegressionExpert):
    """SSL-MOS: mean-pooled last-layer features -> Linear -> MOS."""

    name = "ssl_mos"
    MODELRC = {"allow_weighted_sum": False}  # SSL-MOS reads the last layer

    def build_model(
        self, upstream_feature_selection: str = "last_hidden_state", upstream_layer_selection: int = None, **kwargs
    ) -> SSLMOSModel:
        last_layer = upstream_feature_selection == "last_hidden_state" or upstream_layer_selection == -1
        if not last_layer and not self.modelrc["allow_weighted_sum"]:
            raise ConfigError(
                "ssl_mos uses the upstream's last layer: add -s last_hidden_state (or -l -1) to run_downstream.py "
                "(or set downstream_expert.modelrc.allow_weighted_sum: true to use the featurizer's weighted sum)"
            )
        return SSLMOSModel(self.upstream_dim)
