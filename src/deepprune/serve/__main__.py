"""OpenAI-compatible DeepPrune server entry point: ``python -m deepprune.serve`` (Hydra app, ``conf/serve.yaml``).

Wiring only: checks the config, starts the engine and the judge, serves until SIGTERM/SIGINT. See
:mod:`deepprune.serve` for the API.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deepprune.runtime import CONF_DIR


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="serve")
def main(cfg: DictConfig) -> None:
    from deepprune.serve.server import build_service, check_config, serve

    check_config(cfg)
    serve(build_service(cfg), cfg.server)


if __name__ == "__main__":
    main()
