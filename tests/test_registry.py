"""The registry is the one place an expert is described: what the predictor, the recipes' run names and the
command line read from it."""

import dataclasses
import os
import subprocess
import sys
from argparse import Namespace

import pytest
from conftest import REPO

from distilmos import registry

NAMES_SH = os.path.join(REPO, "egs", "bvcc", "local", "names.sh")


def _args(downstream, selection="hidden_states", config="config.yaml", variant=None):
    """The parts of a checkpoint's ``Args`` that say how a run was started."""
    return Namespace(
        downstream=downstream,
        upstream_feature_selection=selection,
        downstream_variant=variant,
        config=os.path.join(REPO, "downstream", downstream, config),
    )


@pytest.mark.parametrize(
    "args,config,expected",
    [
        (_args("salf_mos", "last_hidden_state"), {}, "salf_mos"),
        (_args("salf_mos"), {}, "salf_mos_wsum"),  # the same config, told apart by -s alone
        (_args("ssl_mos", "last_hidden_state"), {}, "ssl_mos"),
        (_args("ssl_mos"), {}, "ssl_mos"),  # no registered flags match: the expert's first variant
        (_args("moe_mos"), {}, "moe_mos"),
        (_args("distilmos", config="config_no_token.yaml"), {"downstream_expert": {"variant": "no_token"}}, "no_token"),
        (_args("distilmos", variant="mse_distill"), {"downstream_expert": {"variant": "distilmos"}}, "mse_distill"),
    ],
)
def test_variant_of_a_checkpoint(args, config, expected):
    assert registry.variant_of(args.downstream, args, config) == expected


def test_every_runner_flag_of_a_variant_can_be_read_back():
    """A variant whose flags the registry cannot map to s3prl's Args would be unidentifiable in an export."""
    for _, var in registry.VARIANTS.values():
        registry.runner_settings(var)
    with pytest.raises(registry.ConfigError, match="-l is not in registry.RUNNER_FLAGS"):
        registry.runner_settings(registry.Variant("x", "X", "config.yaml", runner_args=("-l", "3")))


def test_models_resolve_and_the_command_line_stays_light():
    for name in [*registry.EXPERTS, *registry.MODELS]:
        assert hasattr(registry.model_class(name), "kwargs_from_state"), name
    code = (
        "import sys; from distilmos import registry; registry.main(['--token_variants']); "
        "assert 'torch' not in sys.modules, 'the registry imported torch'"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == registry.token_variants() == ["distilmos"]


def _run_names(*calls, preset=""):
    """``run_name`` of egs/bvcc/local/names.sh for each ``(variant, tag, k, seed)``."""
    lines = [f". {NAMES_SH}", preset] + [f"run_name {' '.join(map(str, c))}" for c in calls]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    out = subprocess.run(
        ["bash", "-c", "\n".join(lines)], check=False, capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_run_names_put_k_in_for_the_variants_with_tokens():
    names = _run_names(*[(v, "wavlm_base", 200, 0) for v in registry.VARIANTS])
    expected = [f"{v}_wavlm_base{'_k200' if registry.uses_tokens(v) else ''}_seed0" for v in registry.VARIANTS]
    assert names == expected
    assert names[:2] == ["distilmos_wavlm_base_k200_seed0", "no_token_wavlm_base_seed0"]  # the names in use
    # the names follow the registry's flag, not a variant's name
    assert _run_names(("salf_mos", "t", 8, 1), ("distilmos", "t", 8, 1), preset='token_variants=" salf_mos "') == [
        "salf_mos_t_k8_seed1",
        "distilmos_t_seed1",
    ]


def test_the_distilmos_expert_takes_its_variants_from_the_registry(tmp_path, monkeypatch):
    """The variant list lives in the registry alone: the expert accepts a variant registered there and
    refuses any other with the registry's message."""
    from downstream_helpers import import_expert_module

    from distilmos.errors import ConfigError

    expert = import_expert_module("distilmos")
    registered = [v.name for v in registry.expert("distilmos").variants]
    only_extra = dataclasses.replace(
        registry.EXPERTS["distilmos"], variants=(registry.Variant("extra", "x", "c.yaml"),)
    )
    monkeypatch.setitem(registry.EXPERTS, "distilmos", only_extra)
    with pytest.raises(ConfigError, match="expert 'distilmos' has no variant 'no_token'; it has extra"):
        expert.DownstreamExpert(8, {"datarc": {}}, str(tmp_path), downstream_variant="no_token", plugin_runner=True)
    assert registered == ["distilmos", "no_token", "mse_distill"]
