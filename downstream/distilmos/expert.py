"""DistilMOS as an s3prl downstream expert, with the paper's ablations as variants.

Variants (``downstream_expert.variant``, or s3prl's ``-v``):
- ``distilmos``: MOS regression + per-layer k-means token classification, ``MSE + alpha * mean_n CE_n``;
  the tokens come from ``datarc.token_store`` (built by ``python -m upstream_tokens``);
- ``no_token``: the same network trained with MSE only (alpha = 0, no heads);
- ``mse_distill``: per-layer heads regress the frozen pretrained upstream's layer embeddings with MSE
  (that teacher runs on the waveforms, so this variant cannot train from a feature cache);
- ``distilmos_listener``: ``distilmos`` trained listener-aware (``config_listener.yaml``: ``modelrc.listener``,
  an option every variant takes; see :mod:`distilmos.train.expert_base`).

The heads sit on the Feature Processor output and are used in training only; the inference path is
``self.model`` (:class:`DistilMOSModel`) alone.
"""

import torch
import torch.nn.functional as F

from distilmos import registry
from distilmos.data.audio import SAMPLE_RATE
from distilmos.data.dataset import MOSBatch, MOSDataset
from distilmos.errors import ConfigError
from distilmos.models.distilmos_model import DistilMOSModel, LayerHeads
from distilmos.models.masking import valid_mask
from distilmos.train.expert_base import TRAIN, MOSExpert
from distilmos.upstream.build import build_upstream

from .token_targets import IGNORE, align_tokens


class DownstreamExpert(MOSExpert):
    """DistilMOS and its ablations (see the module docstring)."""

    name = "distilmos"
    MODELRC = {
        "hidden_dim": 256,
        "kernels": (5, 3, 3),  # Feature Processor Conv1d kernels
        "blstm_conv_kernel": 3,
        "conv_bias": False,
        "head_hidden_dim": None,  # token / distillation heads (None: hidden_dim)
        "alpha": 0.1,
        "n_clusters": None,  # None: the token store's
        "target_layers": None,  # None: every layer of the token store (mse_distill: of the upstream)
    }

    def __init__(
        self,
        upstream_dim: int,
        downstream_expert: dict,
        expdir: str,
        upstream: str = None,
        upstream_ckpt: str | None = None,
        upstream_model_config: str | None = None,
        downstream_variant: str | None = None,
        **kwargs,
    ):
        super().__init__(upstream_dim, downstream_expert, expdir, **kwargs)
        # the variants are registered once (distilmos/registry.py); the first is the default
        registered = registry.expert(self.name)
        self.variant = downstream_variant or downstream_expert.get("variant") or registered.variants[0].name
        registered.variant(self.variant)  # an unknown one: a ConfigError that lists the registered ones
        # the training objective: a variant that differs only by a rating option trains as its base
        self.objective = {"distilmos_listener": "distilmos"}.get(self.variant, self.variant)
        rc = self.modelrc
        hidden = int(rc["hidden_dim"])
        self.model = DistilMOSModel(
            upstream_dim, hidden, rc["kernels"], int(rc["blstm_conv_kernel"]), bool(rc["conv_bias"])
        )
        self.alpha = float(rc["alpha"]) if self.objective != "no_token" else 0.0
        head_hidden = int(rc["head_hidden_dim"] or hidden)
        self.heads = None
        self.token_store = None
        self._teacher: list[torch.nn.Module] = []  # a list, so the frozen teacher is not a registered submodule
        if self.objective == "distilmos":
            self.token_store = _open_token_store(self.datarc, rc, upstream, upstream_ckpt)
            self.target_layers = list(self.token_store.layers)
            self.heads = LayerHeads(len(self.target_layers), hidden, head_hidden, self.token_store.n_clusters)
        elif self.objective == "mse_distill":
            _refuse_feature_cache(self.datarc)
            teacher = build_upstream(upstream, upstream_ckpt, upstream_model_config).eval().requires_grad_(False)
            self._teacher.append(teacher)
            n_hidden, teacher_dim = _probe_hidden_states(teacher)
            self.target_layers = [int(n) for n in rc["target_layers"] or range(1, n_hidden)]
            if not all(1 <= n < n_hidden for n in self.target_layers):
                raise ConfigError(
                    f"modelrc.target_layers {self.target_layers} outside the upstream's layers 1..{n_hidden - 1}"
                )
            self.heads = LayerHeads(len(self.target_layers), hidden, head_hidden, teacher_dim)
        self.preflight()

    # ---- data -------------------------------------------------------------------------------------
    def make_dataset(self, split: str, utterances) -> MOSDataset:
        if split != TRAIN or self.objective == "no_token":
            return MOSDataset(utterances)
        if self.objective == "mse_distill":
            return MOSDataset(utterances, keep_wavs=True)
        missing = [u.sample_id for u in utterances if u.sample_id not in self.token_store]
        if missing:
            raise ConfigError(
                f"token store {self.datarc['token_store']} lacks {len(missing)} training utterance(s), e.g. "
                f"{', '.join(missing[:5])}; dump this split into it: python -m upstream_tokens dump ..."
            )
        return MOSDataset(utterances, token_store=self.token_store)

    # ---- model ------------------------------------------------------------------------------------
    def losses(self, out, batch: MOSBatch, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(out["pred"], batch.scores.to(out["pred"].device))
        terms = {"mos_mse": mse}
        if self.objective == "distilmos":
            terms["token_ce"] = self._token_ce(out["processed"], batch, lengths)
        elif self.objective == "mse_distill":
            terms["embedding_mse"] = self._embedding_mse(out["processed"], batch, lengths)
        aux = terms.get("token_ce", terms.get("embedding_mse"))
        terms["loss"] = mse + self.alpha * aux if aux is not None else mse
        return terms

    def _token_ce(self, processed: torch.Tensor, batch: MOSBatch, lengths: torch.Tensor) -> torch.Tensor:
        """Mean over layers of the per-utterance mean cross-entropy over valid frames (Eqs. 2-3)."""
        targets = align_tokens(batch.tokens, lengths, processed.size(1), batch.sample_ids).to(processed.device)
        valid = (targets[..., 0] != IGNORE).to(processed.dtype)
        per_layer = []
        for n, logits in enumerate(self.heads(processed)):
            ce = F.cross_entropy(logits.transpose(1, 2), targets[..., n], ignore_index=IGNORE, reduction="none")
            per_layer.append(_utterance_mean(ce, valid))
        return torch.stack(per_layer).mean()

    def _embedding_mse(self, processed: torch.Tensor, batch: MOSBatch, lengths: torch.Tensor) -> torch.Tensor:
        """Mean over layers of the per-utterance frame MSE against the frozen pretrained upstream."""
        teacher = self._teacher[0].to(processed.device)
        with torch.no_grad():
            hidden = teacher([w.to(processed.device) for w in batch.wavs])["hidden_states"]
        n_frames = min(processed.size(1), hidden[0].size(1))
        valid = valid_mask(lengths, n_frames).to(processed.dtype)
        per_layer = []
        for pred, n in zip(self.heads(processed[:, :n_frames]), self.target_layers):
            err = ((pred - hidden[n][:, :n_frames]) ** 2).mean(-1)
            per_layer.append(_utterance_mean(err, valid))
        return torch.stack(per_layer).mean()


def _utterance_mean(frame_values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames per utterance, then over the utterances that have any."""
    counts = valid.sum(1)
    per_utt = (frame_values * valid).sum(1) / counts.clamp_min(1.0)
    has = counts > 0
    return per_utt[has].mean() if has.any() else frame_values.sum() * 0.0


def _refuse_feature_cache(datarc: dict) -> None:
    """``mse_distill`` cannot train from a feature cache: its teacher runs on each batch's waveforms."""
    if datarc.get("feature_cache"):
        raise ConfigError(
            f"variant 'mse_distill' cannot train from datarc.feature_cache={datarc['feature_cache']}: its frozen "
            "teacher upstream runs on each batch's waveforms, and a feature cache holds hidden states instead; "
            "drop the cache for this variant (no_token and distilmos can use it)"
        )


def _probe_hidden_states(upstream) -> tuple:
    """(number of hidden states, their dim) of an upstream, from one second of noise."""
    param = next(upstream.parameters(), None)
    device = param.device if param is not None else "cpu"
    with torch.no_grad():
        hidden = upstream([torch.randn(SAMPLE_RATE, device=device)])["hidden_states"]
    return len(hidden), hidden[-1].size(-1)


def _open_token_store(datarc: dict, modelrc: dict, upstream: str, upstream_ckpt: str | None):
    """Open ``datarc.token_store`` and refuse one built for another upstream, checkpoint, k or layers."""
    from distilmos.data.stores import TokenStore

    path = datarc.get("token_store")
    if not path:
        raise ConfigError("variant 'distilmos' needs datarc.token_store (build one with python -m upstream_tokens fit)")
    store = TokenStore(path)
    layers = modelrc.get("target_layers")
    store.check(
        upstream=upstream,
        upstream_ckpt=upstream_ckpt,
        n_clusters=modelrc.get("n_clusters"),
        layers=[int(n) for n in layers] if layers else None,
    )
    return store
