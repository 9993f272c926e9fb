"""What every expert inherits from :class:`distilmos.train.expert_base.MOSExpert`: the inference path and
the training batch; and what a :class:`~distilmos.train.expert_base.RegressionExpert` adds: the loss."""

import pytest
import torch
import torch.nn as nn

from distilmos.data.dataset import MOSBatch
from distilmos.errors import ConfigError
from distilmos.registry import DATARC_DEFAULTS
from distilmos.train.expert_base import MOSExpert, RegressionExpert
from distilmos.train.runner import per_process_batch


class _Mean(nn.Module):
    def forward(self, features, lengths):
        return {"pred": features.sum(dim=(1, 2)) / lengths}


def test_predict_runs_the_inference_model(tmp_path):
    """An expert that keeps its model as ``self.model`` needs no ``predict`` of its own."""
    expert = MOSExpert(4, {"datarc": {}}, str(tmp_path), plugin_runner=True)
    expert.model = _Mean()
    features, lengths = torch.ones(2, 3, 4), torch.tensor([3, 2])
    assert torch.equal(expert.predict(features, lengths)["pred"], torch.tensor([4.0, 6.0]))


def _expert(tmp_path, data_dir, datarc=None, **told):
    datarc = {"data_dir": data_dir, **(datarc or {})}
    return MOSExpert(4, {"datarc": datarc}, str(tmp_path), **told)


def test_the_runner_shares_the_training_batch_among_processes():
    """``datarc.train_batch_size`` is the batch of one step over all processes; each DDP process gets 1/N."""
    config = {"downstream_expert": {"datarc": {"train_batch_size": 32}}}
    assert per_process_batch(config, 1) == 32
    assert per_process_batch(config, 4) == 8
    assert per_process_batch({"downstream_expert": {"datarc": {}}}, 4) is None  # the expert names the key
    with pytest.raises(ConfigError, match=r"train_batch_size=30 is the batch of one training step over all 4 proc"):
        per_process_batch({"downstream_expert": {"datarc": {"train_batch_size": 30}}}, 4)


def test_each_process_loads_its_share_of_the_batch(tmp_path, demo_data):
    shared = _expert(
        tmp_path, demo_data["bvcc"], {"train_batch_size": 8}, plugin_runner=True, train_batch_per_process=4
    )
    assert shared.get_dataloader("train").batch_size == 4
    # s3prl's own runner: every process loads the whole batch, as s3prl does
    stock = _expert(tmp_path, demo_data["bvcc"], {"train_batch_size": 8}, train_batch_per_process=4)
    assert stock.get_dataloader("train").batch_size == 8


def test_the_training_batch_comes_from_the_config_alone(tmp_path, demo_data):
    expert = _expert(tmp_path, demo_data["bvcc"], plugin_runner=True)
    with pytest.raises(ConfigError, match="datarc.train_batch_size is not set"):
        expert.get_dataloader("train")


def test_datarc_defaults_are_the_registry_s_and_a_config_overrides_them(tmp_path, demo_data):
    expert = _expert(tmp_path, demo_data["bvcc"], {"eval_batch_size": 1}, plugin_runner=True)
    assert {k: v for k, v in expert.datarc.items() if k in DATARC_DEFAULTS} == dict(DATARC_DEFAULTS, eval_batch_size=1)
    assert max(len(b) for b in expert.get_dataloader("val").batch_sampler.batches) == 1
    assert (expert.best_split, expert.best_metric) == (DATARC_DEFAULTS["best_split"], DATARC_DEFAULTS["best_metric"])


class _MeanExpert(RegressionExpert):
    name = "mean"
    MODELRC = {"scale": 1.0}

    def build_model(self, upstream_trainable: bool = False, **kwargs):
        if upstream_trainable:
            raise ConfigError("mean trains on frozen features")
        return _Mean()


def test_a_regression_expert_trains_by_the_loss_its_config_names(tmp_path, demo_data):
    """Its keys are the rating options, ``loss`` and its own; ``loss`` picks L1 or MSE on the averaged score."""
    assert list(_MeanExpert.MODELRC) == ["listener", "uncertainty", "loss", "scale"]
    out = {"pred": torch.tensor([1.0, 4.0])}
    batch = MOSBatch(scores=torch.tensor([2.0, 2.0]), systems=["a", "b"], sample_ids=["x", "y"])
    for loss, expected in (("l1", 1.5), ("mse", 2.5)):
        config = {"datarc": {"data_dir": demo_data["bvcc"]}, "modelrc": {"loss": loss}}
        expert = _MeanExpert(4, config, str(tmp_path), plugin_runner=True)
        assert isinstance(expert.model, _Mean)
        terms = expert.losses(out, batch, torch.tensor([3, 3]))
        assert terms["loss"].item() == pytest.approx(expected) and terms["mos_loss"] is terms["loss"]
    with pytest.raises(
        ConfigError, match=r"unknown mean loss 'huber' in downstream_expert.modelrc.loss; choose from l1"
    ):
        _MeanExpert(4, {"datarc": {}, "modelrc": {"loss": "huber"}}, str(tmp_path))
    # the runner's keyword arguments reach build_model
    with pytest.raises(ConfigError, match="frozen features"):
        _MeanExpert(4, {"datarc": {"data_dir": demo_data["bvcc"]}}, str(tmp_path), upstream_trainable=True)
