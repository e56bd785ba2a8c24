"""A cluster the stack does not create: only a Kubernetes provider for its kubeconfig."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pydantic import SecretStr

from model.config import ConfigError, ExistingClusterSpec


@dataclass(frozen=True)
class ExistingClusterArgs:
    spec: ExistingClusterSpec
    config_path: str
    """`hybrid-infra:clusters.<name>`, for errors."""


class ExistingCluster(pulumi.ComponentResource):
    """Registers nothing in any cloud: Prods and edge proxies reach it through its provider.

    So a stack whose clusters are all existing ones needs no aws, openstack or gcp plugin.
    """

    kind: ClassVar[Literal["existing"]] = "existing"
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(
        self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:clusters:ExistingCluster", name, None, opts)
        if not isinstance(args.spec.kubeconfig, SecretStr):
            raise ConfigError(
                [
                    f"{args.config_path}.kubeconfig: the engine passed it still encrypted; "
                    "set it with `pulumi config set --secret --path "
                    f"'{args.config_path}.kubeconfig' \"$(cat kubeconfig)\"`"
                ]
            )
        plain = args.spec.kubeconfig.get_secret_value()
        self.endpoint = pulumi.Output.from_input(server_of(plain, args.config_path))
        self.kubeconfig = pulumi.Output.secret(plain)
        self.provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"endpoint": self.endpoint})


def server_of(kubeconfig: str, config_path: str) -> str:
    """The API server of the kubeconfig's current context: the endpoint operators see."""
    try:
        document = yaml.safe_load(kubeconfig)
        context = next(
            c["context"] for c in document["contexts"] if c["name"] == document["current-context"]
        )
        cluster = next(
            c["cluster"] for c in document["clusters"] if c["name"] == context["cluster"]
        )
        return str(cluster["server"])
    except (yaml.YAMLError, KeyError, TypeError, StopIteration) as error:
        raise ConfigError(
            [
                f"{config_path}.kubeconfig: not a kubeconfig with a current context and its "
                f"cluster's server ({type(error).__name__})"
            ]
        ) from error
