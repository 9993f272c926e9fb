"""SALF-MOS (Agrawal et al., 2025) as an s3prl downstream expert: a 1,574-parameter head on frozen SSL features.

The upstream stays frozen: run without ``-f``. The paper feeds one SSL layer; ``-s last_hidden_state``
(the registered variant ``salf_mos``) gives it the upstream's output, and leaving ``-s`` out (variant
``salf_mos_wsum``) gives it s3prl's learnable weighted sum of all hidden states instead. Loss: L1 as in
the paper (``modelrc.loss: l1``; ``mse`` also). The network: :mod:`distilmos.models.salf_mos`.
"""

from distilmos.errors import ConfigError
from distilmos.models.salf_mos import SALFMOSModel
from distilmos.train.expert_base import RegressionExpert


class DownstreamExpert(RegressionExpert):
    """SALF-MOS: frame-wise convolutions over the feature axis -> stacked latent features -> MOS."""

    name = "salf_mos"
    MODELRC = {
        "channels": 2,
        "depth": 4,
        "head_bias": False,
        "allow_fine_tune": False,  # SALF-MOS is defined on frozen features
    }

    def build_model(
        self, upstream_trainable: bool = False, upstream_feature_selection: str = "hidden_states", **kwargs
    ) -> SALFMOSModel:
        # SALF-MOS is defined on frozen features: fine-tuning the upstream under a 1,574-parameter head is
        # another model (and 10^4-10^5 times the trained parameters), so -f is refused unless asked for.
        if upstream_trainable and not self.modelrc["allow_fine_tune"]:
            raise ConfigError(
                "salf_mos trains on frozen upstream features: drop -f (--upstream_trainable) from run_downstream.py "
                "(or set downstream_expert.modelrc.allow_fine_tune: true to fine-tune the upstream anyway)"
            )
        model = SALFMOSModel(
            self.upstream_dim,
            channels=int(self.modelrc["channels"]),
            depth=int(self.modelrc["depth"]),
            head_bias=bool(self.modelrc["head_bias"]),
        )
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"[{self.name}] {n_params:,} parameters on {self.upstream_dim}-dim features ({upstream_feature_selection})"
        )
        return model
