"""Config to running server for ``python -m deepprune.serve``: checks, the service, uvicorn.

:func:`check_config` rejects bad settings naming the key before any model loads; :func:`build_service` builds the
engine, the judge and the policy factory; :func:`serve` runs uvicorn on the app until SIGTERM/SIGINT and always
closes the service (the engine processes) when it returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepprune.runtime import get_logger
from deepprune.serve.protocol import POLICIES
from deepprune.validation import check_choice, check_int_at_least, check_number_in, check_probability

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from deepprune.serve.app import Limits
    from deepprune.serve.service import Service

__all__ = ["build_service", "check_config", "serve", "server_limits"]

log = get_logger("deepprune.serve")


def check_config(cfg: DictConfig) -> None:
    """Reject bad server settings with the offending key, before the engine or the judge load."""
    check_int_at_least("n", cfg.n, 1)
    check_probability("tau", cfg.tau)
    check_int_at_least("seed", cfg.seed, 0)
    check_choice("default_policy", cfg.default_policy, tuple(POLICIES))
    server = cfg.server
    check_int_at_least("server.port", server.port, 0)
    if server.port > 65535:
        raise ValueError(f"server.port={server.port} is invalid: `server.port` must be at most 65535")
    check_int_at_least("server.max_in_flight", server.max_in_flight, 1)
    check_int_at_least("server.max_n", server.max_n, 1)
    if cfg.n > server.max_n:
        raise ValueError(f"n={cfg.n} is invalid: `n` must be at most server.max_n={server.max_n}")
    check_number_in("server.poll_s", server.poll_s, 0.001, 60.0)
    check_int_at_least("server.retry_after_s", server.retry_after_s, 0)
    check_number_in("server.graceful_shutdown_s", server.graceful_shutdown_s, 0.0, 86400.0)
    entry = POLICIES[cfg.default_policy]
    if entry not in cfg.policies:
        raise ValueError(f"default_policy={cfg.default_policy!r} is invalid: the config has no policies.{entry}")


def build_service(cfg: DictConfig) -> Service:
    """The engine, the judge and the policies (the engine is closed again if anything after it fails)."""
    from hydra.utils import instantiate

    from deepprune.serve.service import PolicyFactory, Service

    generator = instantiate(cfg.generator)
    judge = None
    try:
        judge = instantiate(cfg.judge) if cfg.get("judge") else None
        factory = PolicyFactory(cfg, judge)
        for name in factory.names:  # every configured policy builds with the defaults: a bad config stops here
            factory.build(name, int(cfg.n), {})
        return Service(
            generator, judge, factory, {"n": int(cfg.n), "policy": cfg.default_policy}, int(cfg.server.max_n),
            seed=int(cfg.seed), served_model_name=cfg.server.served_model_name,
        )  # fmt: skip
    except BaseException:
        generator.close()
        close = getattr(judge, "close", None)
        if callable(close):
            close()
        raise


def server_limits(server: Any) -> Limits:
    """The app's limits from the config's ``server:`` block."""
    from deepprune.serve.app import Limits

    return Limits(
        max_in_flight=int(server.max_in_flight), poll_s=float(server.poll_s), retry_after_s=int(server.retry_after_s)
    )


def serve(service: Service, server: Any) -> None:
    """Run uvicorn on ``service`` until it is stopped (SIGTERM or SIGINT); the service is closed on return."""
    import uvicorn

    from deepprune.serve.app import create_app

    app = create_app(service, server_limits(server))
    config = uvicorn.Config(
        app, host=str(server.host), port=int(server.port), log_level=str(server.log_level),
        timeout_graceful_shutdown=int(server.graceful_shutdown_s), access_log=False,
    )  # fmt: skip

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.begin_shutdown()
            super().handle_exit(sig, frame)

    try:
        log.info("serving %s on http://%s:%d/v1", service.model_names[0], server.host, server.port)
        DrainingServer(config).run()
    finally:
        service.close()
