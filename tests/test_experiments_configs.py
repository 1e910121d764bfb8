"""Experiment, sweep and launcher configs compose for every stage, and name W&B runs and groups as documented."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from facemac.annotation.targets import resolve_targets as resolve_typed
from facemac.settings import build_settings
from facemac.cluster import export_distributed_env, master_port


def resolve_targets(cfg):
    """The stage resolves targets from its typed settings; these tests compose a config first."""
    return resolve_typed(build_settings(cfg, "annotate"))


CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
LAUNCHERS = sorted(p.stem for p in (CONF / "launcher").glob("*.yaml"))
STAGES = ["train", "annotate", "analyze"]


def test_the_documented_experiments_exist():
    assert {"paper", "demo"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_for_every_stage(make_cfg, experiment, stage):
    cfg = make_cfg(stage, [f"experiment={experiment}"])
    assert cfg.hydra.runtime.choices.experiment == experiment
    assert cfg.task_name == stage and cfg.logger.group  # the stage's own keys survive; W&B group is set
    assert OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # every interpolation resolves


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_composes_for_every_stage(make_cfg, launcher, stage):
    cfg = make_cfg(stage, [f"launcher={launcher}", "experiment=paper"])
    assert cfg.hydra.launcher._target_.endswith({"slurm": "SlurmLauncher", "local": "LocalLauncher"}[launcher])
    assert cfg.hydra.callbacks.distributed_env._target_ == "facemac.cluster.DistributedEnvCallback"


def test_slurm_runs_one_task_per_gpu(make_cfg):
    cfg = make_cfg("train", ["launcher=slurm", "hydra.launcher.gpus_per_node=4", "hydra.launcher.partition=gpu"])
    assert cfg.hydra.launcher.tasks_per_node == 4 and cfg.hydra.launcher.partition == "gpu"


def test_paper_experiment_sets_model_data_targets_and_analysis(make_cfg):
    train = make_cfg("train", ["experiment=paper", "+roots.celeba=/data/celeba"])
    assert train.model.timm_name == "vit_base_patch16_224" and train.dataset.format == "celeba"
    assert train.dataset.root == "/data/celeba"  # from the local `roots:` map
    ann = make_cfg("annotate", ["experiment=paper", "+roots.idiff_face=/data/idiff", "annotate.only=[idiff_face]"])
    assert list(ann.targets) == ["bupt_balancedface", "bupt_globalface", "syn_gan", "idiff_face"]
    assert [(s.name, s.root) for s in resolve_targets(ann)] == [("idiff_face", "/data/idiff")]  # roots.<name>
    assert make_cfg("analyze", ["experiment=paper"]).analyze.n_boot == 1000


def test_paper_experiment_leaves_workers_to_the_machine(make_cfg, cores):
    """#22 item 12: `num_workers: 8` made torch warn on a 2-core machine (and forced annotation's DataLoader path)."""
    from facemac.resources import plan_cpu

    train = make_cfg("train", ["experiment=paper", "+roots.celeba=/data/celeba"])
    ann = make_cfg("annotate", ["experiment=paper"])
    assert train.data.num_workers == "auto" and ann.annotate.num_workers == "auto"
    cores(2)
    plan = plan_cpu("annotate", ann.annotate.num_workers, ann.annotate.num_threads, torch.device("cpu"), 1,
                    replicas=ann.annotate.replicas)
    assert plan.workers <= 1 and (plan.replicas or 1) <= 2


def test_command_line_group_choices_beat_the_experiment(make_cfg):
    cfg = make_cfg("train", ["experiment=paper", "dataset=maadface", "model=vit_s", "+roots.maadface=/m"])
    assert (cfg.model.name, cfg.dataset.name, cfg.dataset.root, cfg.dataset.csv) == ("vit_s", "maadface", "/m",
                                                                                     "MAAD_Face.csv")


def test_optuna_config_maximises_and_names_trials_by_their_values(make_cfg):
    cfg = make_cfg("train", ["hparams_search=optuna", "optim.lr=0.002", "hydra.sweeper.study_name=s1"])
    sw = cfg.hydra.sweeper
    assert sw.direction == "maximize" and sw.storage is None
    assert set(sw.params) == {"optim.lr", "optim.weight_decay", "model.drop_path_rate", "train.loss_weighting"}
    assert cfg.logger.group == "optuna-s1"
    assert cfg.logger.name.startswith("demo_tiny-demo_celeba#0 lr=0.002 wd=0.05 dp=0.0 w=positive_rate")


def test_distributed_env_is_exported_for_multi_task_jobs_only():
    class Job:
        job_id, global_rank, local_rank, num_tasks, num_nodes, hostnames = "4711_3", 5, 1, 8, 2, ["n01", "n02"]

    env: dict[str, str] = {}
    values = export_distributed_env(env, Job())
    assert env == values == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
                             "MASTER_ADDR": "n01", "MASTER_PORT": str(master_port("4711_3"))}
    assert 20000 <= master_port("4711_3") < 40000 and master_port("4711_3") != master_port("4712_3")
    Job.num_tasks = 1
    assert export_distributed_env({}, Job()) == {}
    torchrun = {"RANK": "0", "WORLD_SIZE": "2"}
    assert export_distributed_env(torchrun, Job()) == {} and torchrun == {"RANK": "0", "WORLD_SIZE": "2"}
    assert export_distributed_env({}) == {}  # not a submitit job at all
