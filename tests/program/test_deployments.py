"""The delivery paths: the Pulumi Deployments project (deployments/) under Pulumi's mocks (mocks:
the program's shape), its identity step and the install scripts run for real with fake
downloads, and the GitHub Actions example read as the data GitHub reads."""

import configparser
import contextvars
import fnmatch
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from model import fleet
from model.kubeconfig import eks_kubeconfig, gke_kubeconfig
from model.stack import parse as parse_stack
from model.stackfile import ROOT
from tests.fixtures.program import raw_of
from tests.support.synthesis import (
    AGENT_POOL,
    DEPLOYMENT_SETTINGS,
    DRIFT_SCHEDULE,
    POLICY_GROUP,
    one,
)
from tools.release.promote import STACK_ORDER
from tools.synth import ProgramFailed, stack_config, synthesize
from tools.synth import synthesis as synth

DEPLOYMENTS = ROOT / "deployments"
WORKFLOW = ROOT / ".github/workflows/pulumi.yml"
KUBE_AUTH_TOOLS = ROOT / "scripts/kube-auth-tools.sh"
NS = "hybrid-infra-deployments"
# The Pulumi Cloud types only this project declares.
WEBHOOK = "pulumiservice:index:Webhook"
PULUMI_STACK = "pulumiservice:index:Stack"
UPDATE_ROLE = "arn:aws:iam::333333333333:role/pulumi-deployments-hybrid-infra-prod"
READER_ROLE = "arn:aws:iam::333333333333:role/pulumi-deployments-hybrid-infra-prod-reader"


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


def settings(result, stack, project="hybrid-infra"):
    """The deployment settings of `project`'s stack `stack`."""
    return one(
        r
        for r in result.of_type(DEPLOYMENT_SETTINGS)
        if r.inputs["stack"] == stack and r.inputs["project"] == project
    )


def stack_config_file(stack: str) -> dict:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())


def deployments_config() -> dict:
    """This project's stack file, keyed without the namespace."""
    config = yaml.safe_load((DEPLOYMENTS / "Pulumi.main.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in config.items()}


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def operations_of(subjects: list[str]) -> set[tuple[str, str, str]]:
    """(project, stack, operation) of each Deployments OIDC subject, checking its format."""
    found = set()
    for subject in subjects:
        m = re.fullmatch(
            r"pulumi:deploy:org:example-org:project:([\w-]+):stack:([\w-]+)"
            r":operation:([\w-]+):scope:write",
            subject,
        )
        assert m, subject
        found.add(m.groups())
    return found


# --- triggers and sources ----------------------------------------------------------------------


def test_every_stack_in_promotion_order_gets_settings_for_project_hybrid_infra(result):
    import stack_deployments

    assert tuple(stack_deployments.BRANCH_OF) == STACK_ORDER
    stacks = sorted(
        r.inputs["stack"]
        for r in result.of_type(DEPLOYMENT_SETTINGS)
        if r.inputs["project"] == "hybrid-infra"
    )
    assert stacks == sorted(STACK_ORDER)
    for stack in STACK_ORDER:
        inputs = settings(result, stack).inputs
        assert inputs["organization"] == "example-org"
        assert inputs["vcs"]["provider"] == "github"
        assert inputs["vcs"]["repository"] == "example-org/hybrid-infra"


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_dev_and_staging_deploy_on_every_push_to_the_trunk_and_preview_its_pull_requests(
    result, stack
):
    inputs = settings(result, stack).inputs
    assert inputs["sourceContext"]["git"]["branch"] == "main"
    assert inputs["vcs"]["deployCommits"] is True
    assert inputs["vcs"]["previewPullRequests"] is True


def test_prod_deploys_only_from_its_own_branch_and_runs_no_pull_requests_code(result):
    """A pull request's preview would run its code with the prod stack's Pulumi token, which
    decrypts prod's secrets and writes its state: prod previews no pull request."""
    inputs = settings(result, "prod").inputs
    assert inputs["sourceContext"]["git"]["branch"] == "prod"
    assert inputs["vcs"]["deployCommits"] is True  # a push to prod is a merged pull request
    assert inputs["vcs"]["previewPullRequests"] is False
    assert inputs["vcs"]["pullRequestTemplate"] is False


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
        "tests/program/test_policy.py",
        "policy/hybrid_policies.py",
        *others,
    ):
        assert not triggers(changed), changed


# --- what a run installs -----------------------------------------------------------------------


def all_pre_run_commands(result) -> list[str]:
    return [
        c
        for r in result.of_type(DEPLOYMENT_SETTINGS)
        for c in r.inputs["operationContext"]["preRunCommands"]
    ]


def test_no_run_pipes_a_download_into_a_shell(result):
    piped = re.compile(r"(curl|wget)\b[^|;&]*\|\s*(env\b[^|;&]*)?\b(ba|z)?sh\b")
    commands = all_pre_run_commands(result)
    assert commands
    assert not [c for c in commands if piped.search(c)]
    assert not piped.search(WORKFLOW.read_text())
    # the detector itself finds the installer this project used to run
    assert piped.search("curl -LsSf https://astral.sh/uv/0.13.9/install.sh | env X=1 sh")


@pytest.mark.parametrize("stack", STACK_ORDER)
def test_runs_install_uv_by_hash_and_sync_the_locked_dependencies_first(result, stack):
    context = settings(result, stack).inputs["operationContext"]
    pre_run = context["preRunCommands"]
    assert "--require-hashes" in pre_run[0] and "-r deployments/uv-requirements.txt" in pre_run[0]
    assert pre_run[0].endswith("/usr/local/bin/uv")  # on PATH for Pulumi's uv toolchain
    assert pre_run[1] == "uv sync --locked --no-dev"
    assert context["options"]["skipInstallDependencies"] is True
    assert context["environmentVariables"]["UV_NO_DEV"] == "1"
    assert context["environmentVariables"]["UV_LOCKED"] == "1"


def test_uv_is_pinned_with_the_hash_of_every_wheel_pip_may_take():
    """pip's hash-checking mode refuses any file not listed; a requirement without hashes would
    make pip refuse to run at all, so each line must pin a version and carry hashes."""
    text = (DEPLOYMENTS / "uv-requirements.txt").read_text()
    logical = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    )
    requirements = [line.split() for line in logical.splitlines() if line.strip()]
    assert [r[0] for r in requirements] == ["uv==0.13.9"]
    hashes = [h for h in requirements[0][1:] if h.startswith("--hash=sha256:")]
    assert len(hashes) == 2 and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes)


@pytest.mark.parametrize("stack", STACK_ORDER)
def test_runs_install_what_the_kubeconfigs_execute_before_pulumi(result, stack):
    pre_run = settings(result, stack).inputs["operationContext"]["preRunCommands"]
    assert "scripts/kube-auth-tools.sh" in pre_run


def test_the_workflow_installs_uv_and_kube_tools_by_hash_in_every_pulumi_job():
    for name, job in workflow()["jobs"].items():
        steps = [step.get("run", "") + step.get("uses", "") for step in job["steps"]]
        pulumi_steps = [i for i, s in enumerate(steps) if s.startswith("pulumi/actions")]
        if not pulumi_steps:
            continue
        uv = [i for i, s in enumerate(steps) if "--require-hashes" in s and "uv-requirements" in s]
        tools = [i for i, s in enumerate(steps) if "scripts/kube-auth-tools.sh" in s]
        assert uv and tools and uv[0] < tools[0] < pulumi_steps[0], name
        assert not any(s.startswith("astral-sh/setup-uv") for s in steps), name


def fake_tools(tmp_path: Path, curl_body: str) -> dict[str, str]:
    """PATH with only a fake `curl` (writing `curl_body` to -o) and the basics the script uses."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(
        '#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
        f"printf '%s' '{curl_body}' > \"$out\"\n"
    )
    (bin_dir / "curl").chmod(0o755)
    for tool in ("sha256sum", "cut", "mktemp", "rm", "mkdir", "tar", "unzip", "install", "ln"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if found:
            (bin_dir / tool).symlink_to(found)
    return {"PATH": str(bin_dir), "PREFIX": str(tmp_path / "prefix")}


def test_the_tools_script_checks_for_what_the_kubeconfigs_execute_and_what_they_call(tmp_path):
    """Every exec command of the generated kubeconfigs is one the script checks for, and so is
    gcloud, which gke-gcloud-auth-plugin asks for the token; check mode names what is missing."""
    commands = {
        yaml.safe_load(kubeconfig)["users"][0]["user"]["exec"]["command"]
        for kubeconfig in (
            eks_kubeconfig(cluster_name="b", endpoint="https://b", ca_data="Y2E=", region="x"),
            gke_kubeconfig(context="g", endpoint="1.2.3.4", ca_data="Y2E="),
        )
    }
    assert commands == {"aws", "gke-gcloud-auth-plugin"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"PATH": str(bin_dir), "PREFIX": str(tmp_path / "prefix")}  # nothing else on PATH
    check_mode = ["/bin/bash", str(KUBE_AUTH_TOOLS), "--check"]
    for command in sorted(commands | {"gcloud"}):
        check = subprocess.run(check_mode, env=env, capture_output=True, text=True)
        assert check.returncode == 1 and command in check.stderr
        (bin_dir / command).write_text("#!/bin/sh\n")
        (bin_dir / command).chmod(0o755)
    assert subprocess.run(check_mode, env=env, capture_output=True).returncode == 0


@pytest.mark.parametrize("tool", ["aws", "gcloud", "gke-gcloud-auth-plugin"])
def test_a_download_whose_hash_differs_installs_nothing_and_says_why(tmp_path, tool):
    env = fake_tools(tmp_path, "tampered")
    prefix = Path(env["PREFIX"])
    for present in {"aws", "gcloud", "gke-gcloud-auth-plugin"} - {tool}:
        (prefix / "bin").mkdir(parents=True, exist_ok=True)
        (prefix / "bin" / present).write_text("#!/bin/sh\n")
        (prefix / "bin" / present).chmod(0o755)
    ran = subprocess.run(
        ["/bin/bash", str(KUBE_AUTH_TOOLS)], env=env, capture_output=True, text=True
    )
    assert ran.returncode == 1
    assert "not the pinned" in ran.stderr and "nothing was installed" in ran.stderr
    tampered = subprocess.run(["sha256sum"], input="tampered", capture_output=True, text=True)
    assert tampered.stdout.split()[0] in ran.stderr  # what arrived, beside what was expected
    assert not (prefix / "bin" / tool).exists()
    assert not (prefix / "google-cloud-sdk").exists() and not (prefix / "aws-cli").exists()


def test_every_download_of_the_tools_script_is_a_pinned_version_checked_by_hash():
    script = KUBE_AUTH_TOOLS.read_text()
    assert script.count("curl ") == 1  # the one in fetch(), which checks the hash
    fetches = re.findall(r'fetch "([^"]+)" \\\n\s+"\$(\w+)"', script)
    assert len(fetches) == 3
    for url, sha_var in fetches:
        version_var = re.search(r"\$(\w+)", url)
        assert version_var, url  # a versioned file, never the moving "latest" one
        pinned = re.search(rf"^{version_var.group(1)}=(\S+)$", script, re.M)
        digest = re.search(rf"^{sha_var}=([0-9a-f]{{64}})$", script, re.M)
        assert pinned and digest, url


# --- identities --------------------------------------------------------------------------------


def run_identities(result, stack, project="hybrid-infra"):
    import identity

    env = settings(result, stack, project).inputs["operationContext"]["environmentVariables"]
    return env, identity.RunIdentities.from_json(env[identity.RUN_IDENTITIES_VAR])


def test_settings_use_no_static_keys_and_no_single_role_for_every_operation(result):
    """The built-in OIDC block gives a stack one role for every operation, previews included;
    the identity step chooses per operation instead."""
    roles = set()
    for stack in STACK_ORDER:
        inputs = settings(result, stack).inputs
        assert "oidc" not in inputs["operationContext"]
        text = json.dumps(dict(inputs))
        for static in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GOOGLE_CREDENTIALS"):
            assert static not in text
        _, runs = run_identities(result, stack)
        assert runs.identities["update"].aws_role_arn != runs.identities["reader"].aws_role_arn
        roles |= {i.aws_role_arn for i in runs.identities.values()}
    assert len(roles) == 6  # dev's runs cannot act as prod, nor a reader as an updater


def test_a_preview_gets_the_reader_and_only_the_stacks_own_branch_runs_get_the_update_identity():
    import identity

    assert identity.OPERATIONS["preview"] == "reader"
    assert identity.OPERATIONS["refresh"] == "reader"
    updaters = {op for op, name in identity.OPERATIONS.items() if name == "update"}
    assert updaters == {"update", "detect-drift", "remediate-drift"}
    assert "destroy" not in identity.OPERATIONS
    assert set(identity.VERIFY_OPERATIONS.values()) == {"reader"}


def test_the_update_roles_trust_names_only_its_stacks_update_and_drift_runs(result):
    for stack in STACK_ORDER:
        trust = result.outputs["trust"][stack]
        (statement,) = trust["update"]["awsTrustPolicy"]["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"]["Federated"].endswith(":oidc-provider/api.pulumi.com/oidc")
        assert set(statement["Condition"]) == {"StringEquals"}  # exact subjects, no wildcard
        condition = statement["Condition"]["StringEquals"]
        assert condition["api.pulumi.com/oidc:aud"] == "example-org"
        assert operations_of(condition["api.pulumi.com/oidc:sub"]) == {
            ("hybrid-infra", stack, "update"),
            ("hybrid-infra", stack, "detect-drift"),
            ("hybrid-infra", stack, "remediate-drift"),
        }
        gcp = {p.rsplit("/subject/", 1)[1] for p in trust["update"]["gcpPrincipals"]}
        assert gcp == set(condition["api.pulumi.com/oidc:sub"])


def test_the_reader_trusts_previews_refreshes_and_the_verify_run(result):
    for stack in STACK_ORDER:
        trust = result.outputs["trust"][stack]["reader"]
        (statement,) = trust["awsTrustPolicy"]["Statement"]
        subjects = statement["Condition"]["StringEquals"]["api.pulumi.com/oidc:sub"]
        assert operations_of(subjects) == {
            ("hybrid-infra", stack, "preview"),
            ("hybrid-infra", stack, "refresh"),
            ("hybrid-infra-verify", stack, "update"),
        }
        assert trust["awsRoleArn"].endswith(f"-{stack}-reader")
        assert trust["gcpServiceAccount"].startswith(f"hybrid-infra-{stack}-reader@")


def test_the_trust_policy_in_the_docs_is_the_one_the_program_exports(result):
    """docs/delivery.md shows prod's update-role trust; a change to the program must show."""
    docs = (ROOT / "docs/delivery.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", docs, re.S)]
    assert result.outputs["trust"]["prod"]["update"]["awsTrustPolicy"] in blocks


def test_a_reader_sharing_the_update_identity_is_refused_naming_the_key():
    stacks = deployments_config()["stacks"]
    stacks["prod"]["reader"]["aws"] = stacks["prod"]["aws"]
    with pytest.raises(ProgramFailed) as failed:
        run(stacks=stacks)
    assert f"{NS}:stacks.prod.reader.aws.roleArn: must differ from stacks.prod.aws.roleArn" in str(
        failed.value
    )
    assert failed.value.registered == ()


class IdentityRun:
    """`python3 deployments/identity.py` as a Deployments pre-run step runs it: the settings'
    environment, the run's operation and token, a fake `aws` that prints the secret it read."""

    def __init__(self, result, tmp_path: Path, stack: str, project: str = "hybrid-infra"):
        import identity

        env, _ = run_identities(result, stack, project)
        self.dir = tmp_path / "credentials"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "aws").write_text(
            '#!/bin/sh\nprintf "clouds: {from: %s, region: %s, profile: %s}\\n" "$4" "$6" '
            '"$AWS_CONFIG_FILE"\n'
        )
        (bin_dir / "aws").chmod(0o755)
        files = {
            "HYBRID_INFRA_CREDENTIALS": self.dir,
            "AWS_CONFIG_FILE": self.dir / "aws-config",
            "GOOGLE_APPLICATION_CREDENTIALS": self.dir / "gcp.json",
            "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE": self.dir / "gcp.json",
            "OS_CLIENT_CONFIG_FILE": self.dir / "clouds.yaml",
        }
        assert set(files) <= set(identity.CREDENTIAL_ENVIRONMENT)
        self.env = {
            **env,
            **{k: str(v) for k, v in files.items()},
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PULUMI_OIDC_TOKEN": "header.claims.signature",
        }

    def __call__(self, operation: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(DEPLOYMENTS / "identity.py")],
            env={**self.env, "PULUMI_CI_OPERATION": operation, **env},
            capture_output=True,
            text=True,
        )

    def aws_profile(self) -> configparser.SectionProxy:
        parser = configparser.ConfigParser()
        parser.read(self.dir / "aws-config")
        return parser["default"]

    def gcp(self) -> dict[str, Any]:
        return json.loads((self.dir / "gcp.json").read_text())

    def clouds(self) -> dict[str, Any]:
        return yaml.safe_load((self.dir / "clouds.yaml").read_text())["clouds"]


def test_a_preview_run_writes_the_readers_credentials_and_an_up_the_update_identitys(
    result, tmp_path
):
    step = IdentityRun(result, tmp_path, "prod")
    ran = step("preview")
    assert ran.returncode == 0, ran.stderr
    assert "runs as the reader identity" in ran.stdout
    profile = step.aws_profile()
    assert profile["role_arn"] == READER_ROLE
    token_file = profile["web_identity_token_file"]
    assert Path(token_file).read_text() == "header.claims.signature"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    gcp = step.gcp()
    assert gcp["type"] == "external_account"
    assert gcp["credential_source"] == {"file": token_file}
    assert gcp["audience"] == (
        "//iam.googleapis.com/projects/310000000003/locations/global/"
        "workloadIdentityPools/pulumi-deployments/providers/pulumi-cloud"
    )
    assert "hybrid-infra-prod-reader@" in gcp["service_account_impersonation_url"]
    clouds = step.clouds()
    assert clouds["from"].endswith(":secret:hybrid-infra/prod/openstack-reader")
    assert clouds["region"] == "ap-northeast-1"
    assert clouds["profile"] == str(step.dir / "aws-config")  # read as the reader, too

    ran = step("update")
    assert ran.returncode == 0, ran.stderr
    assert step.aws_profile()["role_arn"] == UPDATE_ROLE
    assert "hybrid-infra-prod@" in step.gcp()["service_account_impersonation_url"]
    assert step.clouds()["from"].endswith(":secret:hybrid-infra/prod/openstack-update")


def test_an_operation_without_an_identity_fails_the_run_and_writes_nothing(result, tmp_path):
    step = IdentityRun(result, tmp_path, "prod")
    ran = step("destroy")
    assert ran.returncode == 1
    assert "not 'destroy'" in ran.stderr and "operator's credentials" in ran.stderr
    assert not step.dir.exists()
    ran = step("preview", PULUMI_OIDC_TOKEN="")
    if not Path("/mnt/pulumi/pulumi.oidc").exists():
        assert ran.returncode == 1 and "no Pulumi OIDC token" in ran.stderr


def test_the_verify_run_reads_the_platform_as_the_reader(result, tmp_path):
    step = IdentityRun(result, tmp_path, "prod", project="hybrid-infra-verify")
    ran = step("update")
    assert ran.returncode == 0, ran.stderr
    assert step.aws_profile()["role_arn"] == READER_ROLE
    assert step("preview").returncode == 1  # a verify stack runs nothing else


def test_the_reader_identity_is_an_eks_viewer_and_never_an_admin():
    """mocks: the program's shape. The reader that Deployments uses for prod's previews is one
    of prod's `aws.clusterViewerRoles`: it can list and read (AmazonEKSViewPolicy); the
    cluster-admin policy goes to the configured admin roles only."""
    from components.clusters.eks import ADMIN_POLICY, VIEW_POLICY, EksCluster, EksClusterArgs

    config = parse_stack(raw_of())
    spec = fleet.clusters(config)["B"].spec
    assert config.aws is not None and config.on_prem is not None
    grants: dict[str, str] = {}

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            if args.typ == "aws:eks/accessPolicyAssociation:AccessPolicyAssociation":
                grants[args.inputs["principalArn"]] = args.inputs["policyArn"]
            return f"{args.name}-id", dict(args.inputs)

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, None]:
            return {}, None

    @pulumi.runtime.test
    def build() -> None:
        EksCluster("B", EksClusterArgs(spec, config.aws, config.on_prem))

    def go() -> None:
        pulumi.runtime.set_mocks(Mocks(), project="hybrid-infra", stack="prod", preview=False)
        build()

    contextvars.Context().run(go)
    assert grants[READER_ROLE] == VIEW_POLICY
    viewers = {role for role, policy in grants.items() if policy == VIEW_POLICY}
    assert viewers == set(config.aws.cluster_viewer_roles)
    assert VIEW_POLICY.endswith("/AmazonEKSViewPolicy")
    admins = {role for role, policy in grants.items() if policy == ADMIN_POLICY}
    assert admins == set(config.aws.cluster_admin_roles)


# --- verify after every up ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACK_ORDER)
def test_every_successful_up_starts_the_stacks_verify_run(result, stack):
    hooks = [r for r in result.of_type(WEBHOOK) if r.inputs["stackName"] == stack]
    (hook,) = hooks
    assert hook.inputs["projectName"] == "hybrid-infra"
    assert hook.inputs["format"] == "pulumi_deployments"
    assert hook.inputs["filters"] == ["update_succeeded"]
    assert hook.inputs["payloadUrl"] == f"hybrid-infra-verify/{stack}"
    assert hook.inputs["active"] is True
    verify = settings(result, stack, "hybrid-infra-verify")
    assert verify.urn in hook.dependencies
    (target,) = [r for r in result.of_type(PULUMI_STACK) if r.inputs["stackName"] == stack]
    assert target.inputs["projectName"] == "hybrid-infra-verify"
    assert target.urn in verify.dependencies


@pytest.mark.parametrize("stack", STACK_ORDER)
def test_the_verify_run_checks_the_stack_on_its_branch_and_nothing_else_starts_it(result, stack):
    inputs = settings(result, stack, "hybrid-infra-verify").inputs
    assert inputs["sourceContext"]["git"] == {
        "branch": settings(result, stack).inputs["sourceContext"]["git"]["branch"],
        "repoDir": "deployments/verify",
    }
    assert inputs["vcs"]["deployCommits"] is False
    assert inputs["vcs"]["previewPullRequests"] is False
    assert inputs["agentPoolId"] == "pool-agents"
    pre_run = inputs["operationContext"]["preRunCommands"]
    prometheus = deployments_config()["stacks"][stack].get("prometheus", [])
    assert pre_run[-1] == (
        'cd ../.. && pulumi org set-default "$PULUMI_CI_ORGANIZATION" && '
        f"uv run --no-sync python -m tools.verify --stack {stack}"
        + "".join(f" --prometheus {url}" for url in prometheus)
    )
    # A stack with Prods names where their alerts are, or verify's alerts row fails each run.
    assert bool(prometheus) == bool(stack_config_file(stack)["config"].get("hybrid-infra:prods"))
    assert "cd ../.. && python3 deployments/identity.py" in pre_run
    project = yaml.safe_load((DEPLOYMENTS / "verify/Pulumi.yaml").read_text())
    assert project["name"] == "hybrid-infra-verify"


@pytest.mark.parametrize("verify_exit", [0, 1, 2])
def test_the_verify_step_fails_the_run_exactly_when_verify_fails(result, tmp_path, verify_exit):
    """Run the step as Deployments does, from the verify project's directory, with a `uv` that
    stands for verify: its exit status must become the step's (no `|| true`)."""
    step = settings(result, "prod", "hybrid-infra-verify").inputs["operationContext"]
    command = step["preRunCommands"][-1]
    checkout = tmp_path / "repo"
    (checkout / "deployments/verify").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uv").write_text(
        f'#!/bin/sh\necho "$PWD $*" > {tmp_path}/called\nexit {verify_exit}\n'
    )
    (bin_dir / "uv").chmod(0o755)
    (bin_dir / "pulumi").write_text(f'#!/bin/sh\necho "$*" > {tmp_path}/org\n')
    (bin_dir / "pulumi").chmod(0o755)
    ran = subprocess.run(
        ["bash", "-c", command],
        cwd=checkout / "deployments/verify",
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PULUMI_CI_ORGANIZATION": "example-org",
        },
    )
    assert ran.returncode == verify_exit
    assert (tmp_path / "org").read_text().split() == ["org", "set-default", "example-org"]
    called = (tmp_path / "called").read_text().split()
    assert called[0] == str(checkout)
    verify = ["run", "--no-sync", "python", "-m", "tools.verify", "--stack", "prod"]
    prometheus = ["--prometheus", "http://prometheus.prod.internal.example.net:9090"]
    assert called[1:] == [*verify, *prometheus]


def test_the_workflow_verifies_each_stack_after_its_up_and_fails_on_a_failed_check():
    up = workflow()["jobs"]["up"]
    steps = up["steps"]
    deploy = next(i for i, s in enumerate(steps) if s.get("with", {}).get("command") == "up")
    verify = [i for i, s in enumerate(steps) if "python -m tools.verify" in s.get("run", "")]
    assert verify and verify[0] > deploy
    step = steps[verify[0]]
    assert 'tools.verify --stack "$STACK"' in step["run"]
    assert step["env"]["STACK"] == "${{ matrix.stack }}"
    assert "continue-on-error" not in step and "continue-on-error" not in up
    assert "|| true" not in step["run"]


# --- drift, agents, review stacks, policy ------------------------------------------------------


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
    for found in result.of_type(DEPLOYMENT_SETTINGS):
        assert found.inputs["agentPoolId"] == "pool-agents"
        assert pool.urn in found.dependencies
    assert result.outputs["agentPoolToken"] == synth.SECRET_PLACEHOLDER


def test_review_stacks_are_off_until_enabled(result):
    import stack_deployments as sd

    for stack in STACK_ORDER:
        inputs = settings(result, stack).inputs
        assert inputs["vcs"]["pullRequestTemplate"] is False
        assert inputs["operationContext"]["preRunCommands"] == list(sd.SETUP)


def test_enabled_review_stacks_copy_dev_and_get_a_ttl():
    import stack_deployments as sd

    result = run(reviewStacks={"enabled": True, "template": "dev", "ttlHours": 6})
    dev = settings(result, "dev").inputs
    assert dev["vcs"]["pullRequestTemplate"] is True
    ttl_step = dev["operationContext"]["preRunCommands"][len(sd.SETUP)]
    assert "deployments/ttl/schedules" in ttl_step and "+6 hours" in ttl_step
    for stack in ("staging", "prod"):
        inputs = settings(result, stack).inputs
        assert inputs["vcs"]["pullRequestTemplate"] is False
        assert inputs["operationContext"]["preRunCommands"] == list(sd.SETUP)


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


def test_every_stack_requires_the_trunks_policy_pack_and_a_violation_blocks_the_run(result):
    sys.path.insert(0, str(ROOT / "policy"))
    try:
        from hybrid_policies import PACK_NAME
    finally:
        sys.path.remove(str(ROOT / "policy"))
    version = yaml.safe_load((ROOT / "policy/PulumiPolicy.yaml").read_text())["version"]
    (group,) = result.of_type(POLICY_GROUP)
    assert group.inputs["mode"] == "preventative"  # audit only reports
    assert group.inputs["entityType"] == "stacks"
    assert group.inputs["policyPacks"] == [{"name": PACK_NAME, "versionTag": str(version)}]
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


# --- the GitHub Actions example ----------------------------------------------------------------

USES = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w./-]+)@(\S+)(?:\s+#\s*(v\d+(?:\.\d+)*))?\s*$")


def test_every_action_is_pinned_by_full_commit_sha_with_its_version_beside_it():
    lines = [line for line in WORKFLOW.read_text().splitlines() if "uses:" in line]
    assert len(lines) >= 10
    for line in lines:
        m = USES.match(line)
        assert m, line
        _, ref, version = m.groups()
        assert re.fullmatch(r"[0-9a-f]{40}", ref), line
        assert version, f"name the version the SHA is: {line}"


def test_the_pulumi_token_reaches_only_the_steps_that_run_pulumi():
    flow = workflow()
    assert "PULUMI_ACCESS_TOKEN" not in json.dumps(flow.get("env", {}))
    for name, job in flow["jobs"].items():
        assert "PULUMI_ACCESS_TOKEN" not in json.dumps(job.get("env", {})), name
        for step in job["steps"]:
            holds = "PULUMI_ACCESS_TOKEN" in json.dumps(step)
            runs_pulumi = step.get("uses", "").startswith(
                "pulumi/actions"
            ) or "tools.verify" in step.get("run", "")
            assert holds == runs_pulumi, (
                name,
                step.get("name") or step.get("uses") or step.get("run"),
            )


def test_pull_requests_preview_on_runners_that_never_run_an_up():
    jobs = workflow()["jobs"]
    preview, up = set(jobs["preview"]["runs-on"]), set(jobs["up"]["runs-on"])
    assert "hybrid-infra-preview" in preview and "hybrid-infra-deploy" in up
    assert preview - {"self-hosted"} and not (preview - {"self-hosted"}) & up
    assert (
        "pull_request" in jobs["preview"]["if"]
        and jobs["up"]["if"] == "github.event_name == 'push'"
    )


def test_previews_run_as_the_reader_environment_and_ups_as_the_update_one():
    flow = workflow()
    jobs = flow["jobs"]
    assert jobs["preview"]["environment"] == "${{ matrix.stack }}-preview"
    assert jobs["up"]["environment"] == "${{ matrix.stack }}"
    assert flow["permissions"] == {"contents": "read"}
    assert jobs["preview"]["permissions"]["id-token"] == "write"
    assert jobs["stacks"].get("permissions") is None  # inherits read-only contents


def test_prod_is_previewed_only_for_a_release_pull_request_from_this_repositorys_trunk():
    condition = " ".join(workflow()["jobs"]["preview"]["if"].split())
    assert "github.base_ref != 'prod' ||" in condition
    assert "github.head_ref == 'main'" in condition
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition


def test_a_pull_requests_preview_runs_the_policy_pack_of_its_protected_base_branch():
    steps = workflow()["jobs"]["preview"]["steps"]
    base = [s for s in steps if s.get("with", {}).get("ref") == "${{ github.base_ref }}"]
    (checkout,) = base
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["sparse-checkout"] == "policy"
    (pulumi_step,) = [s for s in steps if s.get("uses", "").startswith("pulumi/actions")]
    assert pulumi_step["with"]["policyPacks"] == f"{checkout['with']['path']}/policy"


def test_checkouts_keep_no_git_credentials_on_the_runner():
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


# --- dependencies held below a fixed CVE -------------------------------------------------------


def go_modules() -> list[Path]:
    return sorted((ROOT / "scripts/pulumi-cli").glob("*/go.mod"))


def semver(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version.split("-")[0])[:3])


@pytest.mark.parametrize("go_mod", go_modules(), ids=lambda p: p.parent.name)
def test_no_go_module_is_replaced_by_an_older_version_than_the_build_requires(go_mod):
    text = go_mod.read_text()
    required = dict(re.findall(r"^\s*([\w./-]+) (v[\w.+-]+)(?: // indirect)?$", text, re.M))
    for module, target, version in re.findall(
        r"^\s*(?:replace\s+)?([\w./-]+)(?: v\S+)? => ([\w./-]+) (v\S+)$", text, re.M
    ):
        if target == module and module in required:
            assert semver(version) >= semver(required[module]), f"{go_mod}: {module} {version}"


@pytest.mark.parametrize("go_mod", go_modules(), ids=lambda p: p.parent.name)
def test_golang_x_text_is_past_its_fixed_cves(go_mod):
    """GO-2021-0113 (CVE-2021-38561) fixed in v0.3.7, GO-2022-1059 (CVE-2022-32149) in v0.3.8:
    the version the build uses, after any replace, is at least v0.3.8."""
    text = go_mod.read_text()
    replaced = re.search(r"golang\.org/x/text(?: v\S+)? => golang\.org/x/text (v\S+)", text)
    required = re.search(r"^\s*golang\.org/x/text (v\S+)", text, re.M)
    version = replaced or required
    assert version is not None
    assert semver(version.group(1)) >= (0, 3, 8)
