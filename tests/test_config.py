"""Every YAML in conf/ composes into the typed schema; bad values fail with clear messages."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import ValidationError

from act_hydra.config import TrainConfig
from act_hydra.validate import ConfigError, collect_problems, validate_config
from tests.helpers import CONF_DIR

GROUPS = ["model", "data", "scheduler", "logger", "experiment", "sweep", "debug"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_into_the_schema(compose_train, group, option):
    overrides = [f"{group}={option}"]
    recorded = ("aloha_hdf5", "lerobot", "lerobot_aloha_sim")  # these read a folder
    if group == "data" and option in recorded or option == "aloha_sim_transfer_cube":
        overrides.append("data.dataset_dir=/data/episodes")
    cfg = compose_train(overrides, return_hydra_config=True)
    assert cfg.hydra.runtime.choices[group] == option
    with open_dict(cfg):
        del cfg["hydra"]
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, TrainConfig)
    validate_config(obj)


def test_defaults_keep_the_original_behaviour(compose_train):
    cfg = OmegaConf.to_object(compose_train())
    assert cfg.scheduler.name == "none"
    assert cfg.logger.backend == "none"
    assert cfg.model.name == "act_small" and cfg.data.name == "synthetic"


def test_paper_experiment_sets_the_paper_hyperparameters(compose_train):
    cfg = compose_train(["experiment=aloha_sim_transfer_cube", "data.dataset_dir=/d"])
    t, m = cfg.training, cfg.model
    assert (t.lr, t.lr_backbone, t.batch_size, t.kl_weight, t.weight_decay) == (
        1e-5,
        1e-5,
        8,
        10.0,
        1e-4,
    )
    assert (
        m.chunk_size,
        m.dim_model,
        m.dim_feedforward,
        m.n_encoder_layers,
        m.n_decoder_layers,
        m.n_heads,
    ) == (100, 512, 3200, 4, 7, 8)


def test_unknown_key_fails_with_hydras_message(compose_train):
    with pytest.raises(ConfigError) as err:  # exit code 2, Hydra's message and its cause
        compose_train(["training.lrr=1"])
    assert "Could not override 'training.lrr'" in str(err.value)
    assert "Key 'lrr' not in 'TrainingConfig'" in str(err.value)
    assert isinstance(err.value.__cause__, ConfigCompositionException)


def test_wrong_type_fails_with_hydras_message(compose_train):
    with pytest.raises(ConfigError) as err:
        compose_train(["training.lr=abc"])
    assert isinstance(err.value.__cause__.__cause__, ValidationError)


def test_unknown_group_option_lists_the_available_ones(compose_train):
    with pytest.raises(Exception, match="(?s)scheduler.*cosnie.*Available options"):
        compose_train(["scheduler=cosnie"])


def _problems(compose_train, *overrides):
    return collect_problems(OmegaConf.to_object(compose_train(list(overrides))))


@pytest.mark.parametrize(
    "override,fragment",
    [
        (
            "training.lr=0",
            "training.lr=0.0 is invalid: the learning rate must be a finite number > 0. Fix: pass "
            "training.lr=1e-5",
        ),
        ("training.lr=-1e-4", "training.lr=-0.0001 is invalid"),
        ("training.batch_size=0", "training.batch_size=0 is invalid: the batch size must be >= 1"),
        (
            "model.chunk_size=0",
            "model.chunk_size=0 is invalid: the action chunk must hold at least",
        ),
        ("training.num_steps=0", "training.num_steps=0 is invalid"),
        ("training.kl_weight=-1", "training.kl_weight=-1.0 is invalid"),
        ("model.dim_model=30", "it must be a positive multiple of model.n_heads=4"),
        ("model.dropout=1.0", "model.dropout=1.0 is invalid: it must be in [0, 1)"),
        ("data.train_ratio=1.0", "data.train_ratio=1.0 is invalid"),
        ("data.camera_names=[]", "data.camera_names=[] is invalid: at least one camera"),
        ("training.device=tpu", "training.device='tpu' is invalid"),
        ("data.synthetic.num_episodes=1", "data.synthetic.num_episodes=1 is invalid"),
        ("data.synthetic.image_size=16", "ResNet downsamples by 32"),
    ],
)
def test_invalid_values_are_named_with_rule_and_fix(compose_train, override, fragment):
    problems = _problems(compose_train, override)
    assert len(problems) == 1, problems
    assert fragment in problems[0]
    assert "Fix: pass" in problems[0]


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["scheduler.warmup_steps=-1"], "scheduler.warmup_steps=-1 is invalid: the warmup length"),
        (["scheduler.warmup_steps=1500"], "the warmup must end before training.num_steps=1500"),
        (["scheduler.warmup_steps=2000"], "scheduler.warmup_steps=2000 is invalid"),
        (
            ["scheduler.min_lr=-1e-7"],
            "scheduler.min_lr=-1e-07 is invalid: the LR floor must be a finite number >= 0",
        ),
        (["scheduler.min_lr=1e-3"], "the LR floor must not exceed training.lr=0.0001"),
    ],
)
def test_invalid_cosine_settings(compose_train, overrides, fragment):
    problems = _problems(compose_train, "scheduler=cosine", *overrides)
    assert any(fragment in p for p in problems), problems


def test_all_problems_are_reported_together(compose_train):
    cfg = OmegaConf.to_object(compose_train(["training.lr=0", "training.batch_size=0"]))
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "training.lr=0.0" in str(err.value) and "training.batch_size=0" in str(err.value)
