"""Every option of the train config groups composes and instantiates (LHT's config test, torchtune's all-configs)."""

import math
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from deepprune.judge.module import VAL_AUROC_SOURCE_MEAN
from deepprune.runtime import CONF_DIR

CONF = Path(CONF_DIR)


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def make_cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig().set_config(cfg)
    return cfg


def test_optimized_metric_is_the_module_constant(tmp_path):
    cfg = make_cfg(tmp_path)
    assert cfg.optimized_metric == VAL_AUROC_SOURCE_MEAN
    assert cfg.callbacks.model_checkpoint.monitor == VAL_AUROC_SOURCE_MEAN
    assert cfg.blend.metric == VAL_AUROC_SOURCE_MEAN  # the blend is chosen on what the checkpoint is
    assert make_cfg(tmp_path, "callbacks=early_stopping").callbacks.early_stopping.monitor == VAL_AUROC_SOURCE_MEAN


@pytest.mark.parametrize("loss", options("loss"))
def test_losses_instantiate(tmp_path, loss):
    fn = instantiate(make_cfg(tmp_path, f"loss={loss}").loss)
    value = fn(torch.zeros(2, 2), torch.tensor([0, 1]))
    assert math.isfinite(value.item())


@pytest.mark.parametrize("sampler", options("sampler"))
def test_samplers_instantiate(tmp_path, sampler):
    factory = instantiate(make_cfg(tmp_path, f"sampler={sampler}").sampler)
    result = factory([0, 0, 0, 1])
    assert (result is None) == (sampler == "plain")


def test_optimizer_and_schedulers(tmp_path):
    for opt in options("optimizer"):
        for sched in options("scheduler"):
            cfg = make_cfg(tmp_path, f"optimizer={opt}", f"scheduler={sched}")
            optimizer = instantiate(cfg.optimizer)(params=[torch.nn.Parameter(torch.zeros(1))])
            scheduler = instantiate(cfg.scheduler)(optimizer=optimizer, num_training_steps=10)
            lrs = []
            for _ in range(10):
                lrs.append(optimizer.param_groups[0]["lr"])
                optimizer.step()
                scheduler.step()
            assert max(lrs) == pytest.approx(cfg.optimizer.lr) and lrs[0] < lrs[1]  # warmup, then decay
            assert lrs[-1] < lrs[2]
    assert make_cfg(tmp_path, "~scheduler").get("scheduler") is None


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_callbacks_instantiate(tmp_path, callbacks):
    cfg = make_cfg(tmp_path, f"callbacks={callbacks}")
    made = [instantiate(c) for c in (cfg.callbacks or {}).values()]
    # default: best checkpoint, last checkpoint, epoch seeding (deepprune/judge/checkpoints.py)
    assert len(made) == {"default": 3, "early_stopping": 4, "none": 0}[callbacks]


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainers_instantiate(tmp_path, trainer):
    import lightning as L

    cfg = make_cfg(tmp_path, f"trainer={trainer}")
    assert cfg.trainer.devices == (1 if trainer in ("cpu", "gpu") else -1)
    if trainer in ("ddp", "fsdp"):
        assert cfg.trainer.strategy in ("ddp",) or cfg.trainer.strategy._target_.endswith("FSDPStrategy")
    if trainer != "cpu" and not torch.cuda.is_available():
        # no GPU here: check the keys against Trainer's signature (CPU-only machines cannot build these)
        import inspect

        params = inspect.signature(L.Trainer.__init__).parameters
        assert set(cfg.trainer) - {"_target_"} <= set(params)
        if trainer == "fsdp":
            instantiate(cfg.trainer.strategy)
        return
    assert isinstance(instantiate(cfg.trainer), L.Trainer)


def test_csv_logger(tmp_path):
    logger = instantiate(make_cfg(tmp_path, "logger=csv").logger)
    assert Path(logger.log_dir).parent == tmp_path / "csv" or Path(logger.log_dir) == tmp_path / "csv"


def test_wandb_logger_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = make_cfg(tmp_path, "logger=wandb")
    assert cfg.logger.mode == "offline" and cfg.logger.project == "deepprune"
    assert cfg.logger.group == cfg.hydra.sweep.dir
    logger = instantiate(cfg.logger)
    try:
        logger.log_metrics({"val/auroc": 0.5})
        assert logger.experiment.settings.mode == "offline"
        assert Path(logger.experiment.dir).is_relative_to(tmp_path)
    finally:
        wandb.finish()
        wandb.teardown()


@pytest.mark.parametrize("data", options("data"))
@pytest.mark.parametrize("truncation", options("truncation"))
def test_data_configs_instantiate(tmp_path, data, truncation):
    from deepprune.judge.datamodule import PairDataModule
    from deepprune.truncation import PrefixRule

    cfg = make_cfg(tmp_path, f"data={data}", f"truncation={truncation}")
    rule = instantiate(cfg.truncation)
    # the CPU scale of conf/train.yaml: 128 judge tokens, or the paper's 25 reasoning words
    assert (
        isinstance(rule, PrefixRule)
        and (rule.kind, rule.k) == ({"tokens": ("tokens", 128), "words": ("words", 25)}[truncation])
    )
    dm = instantiate(cfg.data, head=None, truncation=rule, sampler=instantiate(cfg.sampler))
    assert isinstance(dm, PairDataModule) and callable(dm.traces_source)  # traces load only in setup()
    assert dm.truncation == rule and dm.seed == cfg.seed


def test_an_experiment_config_sets_train_yamls_own_keys(tmp_path):
    """train.yaml lists _self_ before hparams_search and experiment, so an experiment config (a user's, on the
    search path) can set this file's top-level keys, interpolations included, as online's experiments can."""
    exp = tmp_path / "conf" / "experiment"
    exp.mkdir(parents=True)
    (exp / "probe.yaml").write_text("# @package _global_\nseed: 7\nscale:\n  token_k: 64\noptimizer:\n  lr: 1.0e-3\n")
    cfg = make_cfg(tmp_path, f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=probe")
    assert (cfg.seed, cfg.scale.token_k, cfg.optimizer.lr) == (7, 64, 1.0e-3)
    assert cfg.truncation.k == 64  # ${scale.token_k} follows
    plain = make_cfg(tmp_path)
    assert (plain.seed, plain.scale.token_k, plain.optimizer.lr, plain.truncation.k) == (42, 128, 3.0e-5, 128)


def test_optuna_search_config(tmp_path):
    cfg = make_cfg(tmp_path, "hparams_search=optuna")
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.sweeper.direction == "maximize"
    assert set(cfg.hydra.sweeper.params) == {"optimizer.lr", "loss", "sampler", "truncation"}


def test_wandb_sweep_definition_uses_valid_overrides(tmp_path):
    sweep = yaml.safe_load((CONF / "wandb_sweep.yaml").read_text())
    assert sweep["metric"] == {"name": VAL_AUROC_SOURCE_MEAN, "goal": "maximize"}
    assert sweep["command"][-1] == "${args_no_hyphens}" and "deepprune.train" in sweep["command"]
    overrides = []
    for key, spec in sweep["parameters"].items():
        value = spec["values"][-1] if "values" in spec else spec["min"]
        overrides.append(f"{key}={value}")
    cfg = make_cfg(tmp_path, *overrides)
    assert cfg.truncation._target_.endswith("WordPrefix") and cfg.optimizer.lr == pytest.approx(1e-5)


def test_module_config_and_default_model(tmp_path):
    cfg = make_cfg(tmp_path)
    assert OmegaConf.select(cfg, "module._target_") == "deepprune.judge.module.JudgeModule"
    assert cfg.module.reference_scorer._target_.endswith("EmbeddingScorer")
    assert cfg.model._target_ == "deepprune.judge.siamese.siamese_head"
    assert cfg.model.name_or_path._target_ == "deepprune.assets.minilm_dir"
    # the default data: the mixture, CHAMP's GPT-4 and GPT-4 Turbo held out for test, Qwen2.5-Math held out whole
    champ = cfg.data.sources.champ
    assert champ.role == "train" and champ.test_models == ["GPT-4", "GPT-4 Turbo"] and not champ.get("val_models")
    assert cfg.data.sources.qwen25_math.role == "heldout" and cfg.data.sources.skythought_amc23.role == "train"
    assert cfg.blend._target_ == "deepprune.judge.blend.WeightBlend" and 0.0 in cfg.blend.alphas
    single = make_cfg(tmp_path, "data=champ")
    assert single.data.test_models == ["GPT-4", "GPT-4 Turbo"] and single.data.val_models == []


@pytest.mark.parametrize("model", ["tiny", "tiny_classifier", pytest.param("minilm", marks=pytest.mark.slow)])
def test_offline_model_configs_build_a_judge_module(tmp_path, model):
    from deepprune.judge.module import JudgeModule

    # conf/model/tiny.yaml's unquoted [yes, no] loads as booleans (YAML 1.1); the CLI parser keeps strings
    extra = ["model.prompt.label_words=[yes,no]"] if model == "tiny" else []
    cfg = make_cfg(tmp_path, f"model={model}", *extra)
    head = instantiate(cfg.model)
    module = instantiate(
        cfg.module,
        head=head,
        loss_fn=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        reference_scorer=None,
    )
    assert isinstance(module, JudgeModule)
    ids = torch.tensor([head.encode("so the answer is 3", "thus it is 4")])
    logits = module(ids, torch.ones_like(ids))
    assert logits.shape == (1, 2)
    assert all(k.startswith("head.") for k in module.state_dict())
