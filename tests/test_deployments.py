"""The Pulumi Deployments project (deployments/) under Pulumi's mocks, per hybrid-infra stack."""

import fnmatch
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from model.kubeconfig import eks_kubeconfig, gke_kubeconfig
from tests.synthesis import AGENT_POOL, DEPLOYMENT_SETTINGS, DRIFT_SCHEDULE, POLICY_GROUP, one
from tools.release.promote import STACK_ORDER
from tools.synth import ProgramFailed, stack_config, synthesize
from tools.synth import synthesis as synth

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENTS = ROOT / "deployments"
NS = "hybrid-infra-deployments"


@pytest.fixture(autouse=True)
def program_dir(monkeypatch):
    """The CLI runs deployments/__main__.py with its own directory importable; so do we."""
    monkeypatch.syspath_prepend(str(DEPLOYMENTS))
    monkeypatch.setitem(synth.MOCK_OUTPUTS, AGENT_POOL, {"agentPoolId": "pool-{name}"})


def run(**overrides):
    """Synthesize the deployments stack, with some of its config keys replaced."""
    config, secrets = stack_config("main", DEPLOYMENTS)
    for key, value in overrides.items():
        full = f"{NS}:{key}"
        if value is None:
            config.pop(full)
        else:
            config[full] = value if isinstance(value, str) else json.dumps(value)
    return synthesize("main", root=DEPLOYMENTS, config=config, secret_keys=secrets)


@pytest.fixture(scope="module")
def result():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(DEPLOYMENTS))
        mp.setitem(synth.MOCK_OUTPUTS, AGENT_POOL, {"agentPoolId": "pool-{name}"})
        return run()


def settings(result, stack):
    """The deployment settings of the hybrid-infra stack `stack`."""
    return one(r for r in result.of_type(DEPLOYMENT_SETTINGS) if r.inputs["stack"] == stack)


def stack_config_file(stack: str) -> dict:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())


def deployments_config() -> dict:
    """This project's stack file, keyed without the namespace."""
    config = yaml.safe_load((DEPLOYMENTS / "Pulumi.main.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in config.items()}


def test_every_stack_in_promotion_order_gets_settings_for_project_hybrid_infra(result):
    import stack_deployments

    assert tuple(stack_deployments.BRANCH_OF) == STACK_ORDER
    stacks = sorted(r.inputs["stack"] for r in result.of_type(DEPLOYMENT_SETTINGS))
    assert stacks == sorted(STACK_ORDER)
    for stack in STACK_ORDER:
        inputs = settings(result, stack).inputs
        assert inputs["project"] == "hybrid-infra"
        assert inputs["organization"] == "example-org"
        assert inputs["vcs"]["provider"] == "github"
        assert inputs["vcs"]["repository"] == "example-org/hybrid-infra"


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_dev_and_staging_deploy_on_every_push_to_the_trunk(result, stack):
    inputs = settings(result, stack).inputs
    assert inputs["sourceContext"]["git"]["branch"] == "main"
    assert inputs["vcs"]["deployCommits"] is True
    assert inputs["vcs"]["previewPullRequests"] is True


def test_prod_deploys_only_from_its_own_branch_and_previews_pull_requests_to_it(result):
    inputs = settings(result, "prod").inputs
    assert inputs["sourceContext"]["git"]["branch"] == "prod"
    assert inputs["vcs"]["deployCommits"] is True  # a push to prod is a merged pull request
    assert inputs["vcs"]["previewPullRequests"] is True


@pytest.mark.parametrize("stack", STACK_ORDER)
def test_path_filters_cover_the_program_and_only_the_stacks_own_file(result, stack):
    paths = settings(result, stack).inputs["vcs"]["paths"]

    def triggers(changed: str) -> bool:
        return any(fnmatch.fnmatch(changed, pattern) for pattern in paths)

    program = ("components/hybrid_lb.py", "providers/octavia_nlb_sync/planner.py", "uv.lock")
    for changed in (*program, "__main__.py", f"Pulumi.{stack}.yaml"):
        assert triggers(changed), changed
    others = [f"Pulumi.{s}.yaml" for s in STACK_ORDER if s != stack]
    for changed in (
        "docs/delivery.md",
        "tests/test_policy.py",
        "policy/hybrid_policies.py",
        *others,
    ):
        assert not triggers(changed), changed


@pytest.mark.parametrize("stack", STACK_ORDER)
def test_runs_install_uv_and_sync_the_locked_dependencies_first(result, stack):
    context = settings(result, stack).inputs["operationContext"]
    pre_run = context["preRunCommands"]
    assert pre_run[0].startswith("curl -LsSf https://astral.sh/uv/0.13.9/install.sh | ")
    assert "UV_INSTALL_DIR=/usr/local/bin" in pre_run[0]  # on PATH for Pulumi's uv toolchain
    assert pre_run[1] == "uv sync --locked --no-dev"
    assert context["options"]["skipInstallDependencies"] is True
    assert context["environmentVariables"] == {"UV_NO_DEV": "1", "UV_LOCKED": "1"}


@pytest.mark.parametrize("stack", STACK_ORDER)
def test_runs_install_what_the_kubeconfigs_execute_before_pulumi(result, stack):
    pre_run = settings(result, stack).inputs["operationContext"]["preRunCommands"]
    assert "scripts/kube-auth-tools.sh" in pre_run


def test_the_workflow_installs_what_the_kubeconfigs_execute_in_every_job():
    workflow = yaml.safe_load((ROOT / ".github/workflows/pulumi.yml").read_text())
    for name, job in workflow["jobs"].items():
        steps = [step.get("run", "") + step.get("uses", "") for step in job["steps"]]
        pulumi = [i for i, s in enumerate(steps) if s.startswith("pulumi/actions")]
        if not pulumi:
            continue
        tools = [i for i, s in enumerate(steps) if "scripts/kube-auth-tools.sh" in s]
        assert tools and tools[0] < pulumi[0], name


def test_the_tools_script_installs_exactly_what_the_kubeconfigs_execute(tmp_path):
    """Every exec command of the generated kubeconfigs is one the script checks for; its check
    mode passes when they are on PATH and names the missing one otherwise."""
    commands = {
        yaml.safe_load(kubeconfig)["users"][0]["user"]["exec"]["command"]
        for kubeconfig in (
            eks_kubeconfig(cluster_name="b", endpoint="https://b", ca_data="Y2E=", region="x"),
            gke_kubeconfig(context="g", endpoint="1.2.3.4", ca_data="Y2E="),
        )
    }
    assert commands == {"aws", "gke-gcloud-auth-plugin"}
    script = ROOT / "scripts/kube-auth-tools.sh"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"PATH": str(bin_dir), "PREFIX": str(tmp_path / "prefix")}  # nothing else on PATH
    check_mode = ["/bin/bash", str(script), "--check"]
    for command in sorted(commands):
        check = subprocess.run(check_mode, env=env, capture_output=True, text=True)
        assert check.returncode == 1 and command in check.stderr
        (bin_dir / command).write_text("#!/bin/sh\n")
        (bin_dir / command).chmod(0o755)
    assert subprocess.run(check_mode, env=env, capture_output=True).returncode == 0


def test_credentials_are_short_lived_oidc_per_stack_and_never_static_keys(result):
    roles = {}
    for stack in STACK_ORDER:
        inputs = settings(result, stack).inputs
        oidc = inputs["operationContext"]["oidc"]
        roles[stack] = oidc["aws"]["roleARN"]
        assert oidc["aws"]["sessionName"] == f"pulumi-hybrid-infra-{stack}"
        assert oidc["aws"]["duration"] == "1h"
        assert oidc["gcp"]["serviceAccount"].startswith(f"hybrid-infra-{stack}@")
        assert oidc["gcp"]["projectId"].isdigit()
        text = json.dumps(dict(inputs))
        for static in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GOOGLE_CREDENTIALS"):
            assert static not in text
    assert len(set(roles.values())) == 3  # dev's run cannot act as prod


def test_stacks_with_member_syncs_get_drift_detection_with_auto_remediation_every_10_minutes(
    result,
):
    drifts = {r.inputs["stack"]: r for r in result.of_type(DRIFT_SCHEDULE)}
    with_syncs = [
        s for s in STACK_ORDER if stack_config_file(s)["config"].get("hybrid-infra:loadBalancers")
    ]
    assert with_syncs == list(STACK_ORDER)  # every stack file has load balancers today
    assert sorted(drifts) == sorted(with_syncs)
    for stack, drift in drifts.items():
        assert drift.inputs["scheduleCron"] == "*/10 * * * *"
        assert drift.inputs["autoRemediate"] is True
        assert drift.inputs["project"] == "hybrid-infra"
        assert settings(result, stack).urn in drift.dependencies  # settings must exist first


def test_a_stack_without_load_balancers_gets_no_drift_schedule():
    import stack_deployments as sd

    documents = {s: stack_config_file(s) for s in STACK_ORDER}
    del documents["dev"]["config"]["hybrid-infra:loadBalancers"]
    plans = {p.stack: p for p in sd.plan(sd.parse(deployments_config()), documents)}
    assert plans["dev"].drift_cron == "*/10 * * * *", "discovery alone needs the drift runs"
    del documents["dev"]["config"]["hybrid-infra:discovery"]
    plans = {p.stack: p for p in sd.plan(sd.parse(deployments_config()), documents)}
    assert plans["dev"].drift_cron is None
    assert plans["staging"].drift_cron == plans["prod"].drift_cron == "*/10 * * * *"


def test_runs_happen_on_the_on_prem_agent_pool(result):
    (pool,) = result.of_type(AGENT_POOL)
    assert pool.inputs["name"] == "hybrid-infra-onprem"
    for stack in STACK_ORDER:
        found = settings(result, stack)
        assert found.inputs["agentPoolId"] == "pool-agents"
        assert pool.urn in found.dependencies
    assert result.outputs["agentPoolToken"] == synth.SECRET_PLACEHOLDER


def test_review_stacks_are_off_until_enabled(result):
    for stack in STACK_ORDER:
        inputs = settings(result, stack).inputs
        assert inputs["vcs"]["pullRequestTemplate"] is False
        assert len(inputs["operationContext"]["preRunCommands"]) == 3


def test_enabled_review_stacks_copy_dev_and_get_a_ttl():
    result = run(reviewStacks={"enabled": True, "template": "dev", "ttlHours": 6})
    dev = settings(result, "dev").inputs
    assert dev["vcs"]["pullRequestTemplate"] is True
    ttl_step = dev["operationContext"]["preRunCommands"][3]
    assert "deployments/ttl/schedules" in ttl_step and "+6 hours" in ttl_step
    for stack in ("staging", "prod"):
        inputs = settings(result, stack).inputs
        assert inputs["vcs"]["pullRequestTemplate"] is False
        assert len(inputs["operationContext"]["preRunCommands"]) == 3


def test_the_ttl_step_posts_a_ttl_for_review_stacks_and_skips_the_template(tmp_path):
    import stack_deployments as sd

    fake = tmp_path / "curl"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    step = sd.review_stack_ttl_command("dev", 8)
    env = {
        "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
        "PULUMI_CI_ORGANIZATION": "example-org",
        "PULUMI_CI_PROJECT": "hybrid-infra",
        "PULUMI_CI_OPERATION": "update",
        "PULUMI_ACCESS_TOKEN": "stack-token",
    }

    def posted(stack: str) -> list[str]:
        env_of_run = {**env, "PULUMI_CI_STACK": stack}
        ran = subprocess.run(["bash", "-c", step], env=env_of_run, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        return ran.stdout.splitlines()

    args = posted("pr-example-org-42")
    assert args[-1] == (
        "https://api.pulumi.com/api/stacks/example-org/hybrid-infra/pr-example-org-42"
        "/deployments/ttl/schedules"
    )
    body = json.loads(args[args.index("--data") + 1])
    assert body["deleteAfterDestroy"] is True and body["timestamp"].endswith("Z")
    assert "Authorization: token stack-token" in args
    assert posted("dev") == []


def test_a_published_policy_pack_is_enforced_on_every_stack_when_configured(result):
    assert result.of_type(POLICY_GROUP) == []
    configured = run(policyPack={"name": "hybrid-infra", "versionTag": "0.1.0"})
    (group,) = configured.of_type(POLICY_GROUP)
    assert group.inputs["policyPacks"] == [{"name": "hybrid-infra", "versionTag": "0.1.0"}]
    assert sorted(s["name"] for s in group.inputs["stacks"]) == sorted(STACK_ORDER)
    assert {s["routingProject"] for s in group.inputs["stacks"]} == {"hybrid-infra"}


def test_prod_sharing_the_trunk_branch_is_refused():
    with pytest.raises(ProgramFailed, match="prodBranch: must differ from trunkBranch"):
        run(prodBranch="main")


def test_missing_credentials_are_one_clear_error_and_nothing_is_declared():
    stacks = dict(deployments_config()["stacks"])
    del stacks["prod"]
    stacks["dev"] = {**stacks["dev"], "aws": {"roleArn": "AKIAEXAMPLE"}}
    with pytest.raises(ProgramFailed) as failed:
        run(stacks=stacks)
    message = str(failed.value)
    assert "2 problem(s)" in message
    assert f"{NS}:stacks.dev.aws.roleArn" in message
    assert f"{NS}:stacks.prod: required" in message
    assert failed.value.registered == ()
