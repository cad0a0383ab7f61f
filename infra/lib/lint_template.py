"""Lints what CloudFormation will deploy, not only the SAM file we write.

`sam validate --lint` and `cfn-lint template.yaml` check the SAM resources against SAM's
own schemas; they never see the roles, policies, event source mappings and stage that
the SAM transform generates, so a bad attribute inside a function policy, an unknown
action or an impossible architecture would only fail at `sam deploy`. This script:

1. transforms template.yaml offline with aws-sam-translator (the library the SAM CLI and
   CloudFormation's transform use), after what AWS::LanguageExtensions does first, with
   dummy parameter values and a placeholder S3 location for the code, in each setting of
   SETTINGS (ordinary Lambda, and the request-serving functions on a Lambda Managed
   Instances capacity provider): steps 2 to 4 run on both transformed templates;
2. runs cfn-lint on the transformed template (and `sam validate --lint`, which lints the
   SAM file), and checkov on both files;
3. checks every IAM policy document of the transformed template with parliament
   (unknown actions, malformed resource ARNs, condition keys that do not exist for the
   action, kms:EncryptionContext:* and kms:EncryptionContextKeys included);
4. checks that each function role grants exactly what infra/iam-expectations.yaml lists
   (the one place where what each function's code calls is written down, with the
   suppressions and their reasons), and the template's own rules: every statement that
   allows a cryptographic KMS operation carries a kms:EncryptionContext:* condition,
   token statements require `sub` in the context, the key policy lets only this stack's
   function roles (one RolePath naming the stack's unique id, matched by aws:PrincipalArn)
   use the key outside DynamoDB, route throttling settings name real routes, an SQS event
   source's queue has a visibility timeout of at least its function's timeout, each event
   source mapping's role reads its own queue or stream only, schedules send {}, alarms on
   the EMF counts name their dimension, every request-serving function (and only they) is
   on the capacity provider when there is one;
5. checks that parameter defaults and samconfig.toml's values pass the template's own
   AllowedPattern/AllowedValues/MinValue/MaxValue and Rules (placeholders, containing
   "replace-me", must fail them, so that they cannot be deployed by mistake);
6. applies each deliberate mistake of infra/template-fixtures.yaml to a copy of
   template.yaml and shows that the check it names finds it (in the fixture's setting),
   so the check can never silently stop checking.

Usage: infra/lint-template [--no-fixtures | --fixtures-only] [--template PATH]
Exit status 0 when template.yaml passes and every fixture is caught.
"""

from __future__ import annotations

import argparse
import copy
import concurrent.futures
import fnmatch
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
EXPECTATIONS = ROOT / "infra" / "iam-expectations.yaml"
FIXTURES = ROOT / "infra" / "template-fixtures.yaml"
OUT = ROOT / "target" / "lint-template"

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "google-offline-access"
# Values for parameters without a default; they must pass the template's own constraints.
DUMMY_PARAMETERS = {
    "GoogleClientId": "123456789012-lintdummy.apps.googleusercontent.com",
    "GoogleClientSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:google-client-secret-AbCdEf",
}
# The template is checked as deployed in each of these settings (parameter values besides
# the dummies and the defaults): ordinary Lambda, and the request-serving functions on a
# Lambda Managed Instances capacity provider.
SETTINGS = {
    "ordinary": {},
    "managed-instances": {
        "CapacityProviderArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:capacity-provider:lint-dummy",
    },
}
PLACEHOLDER_MARK = "replace-me"
CODE_PLACEHOLDER = "s3://lint-placeholder-bucket/code.zip"

# The checks, cheapest first. A fixture names the ones that must find its mistake.
STAGES = ("transform", "parameters", "rules", "expectations", "parliament", "cfn-lint")


@dataclass
class Problem:
    stage: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.stage}] {self.where}: {self.message}"


@dataclass
class Result:
    problems: list[Problem] = field(default_factory=list)
    cfn: dict[str, Any] | None = None
    suppressions_used: set[int] = field(default_factory=set)

    def add(self, stage: str, where: str, message: str) -> None:
        self.problems.append(Problem(stage, where, message))

    def stages(self) -> set[str]:
        return {p.stage for p in self.problems}


# ------------------------------------------------------------------ loading + transform


def load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def parse_sam(text: str) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(text)


def language_extensions(sam: dict[str, Any], parameters: dict[str, str], result: Result) -> dict[str, Any] | None:
    """What AWS::LanguageExtensions does before the SAM transform, as far as SAM needs it:
    with the stack's parameter values, each Fn::If in a SAM function's properties becomes
    the branch its condition chooses (AWS::NoValue: the property goes). CloudFormation's
    transform resolves every intrinsic function it can, to the same values; the rest of the
    template is left as written, so the checks below read it as before. (SAM CLI's own
    implementation, samcli.lib.cfn_language_extensions, turns some !Sub into plain strings
    when run offline.)"""
    sam = copy.deepcopy(sam)
    params = {
        name: str(parameters.get(name, (spec or {}).get("Default", "")))
        for name, spec in (sam.get("Parameters") or {}).items()
    }
    conditions = sam.get("Conditions") or {}

    def decide(v: Any) -> Any:
        if isinstance(v, dict) and len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                if arg not in params:
                    raise ValueError(f"Ref {arg} in a condition is not a parameter")
                return params[arg]
            if k == "Condition":
                return decide(conditions[arg])
            if k == "Fn::Equals":
                return str(decide(arg[0])) == str(decide(arg[1]))
            if k == "Fn::Not":
                return not decide(arg[0])
            if k == "Fn::And":
                return all(decide(a) for a in arg)
            if k == "Fn::Or":
                return any(decide(a) for a in arg)
            raise ValueError(f"{k} in a condition is not known to infra/lib/lint_template.py")
        return v

    no_value = object()

    def resolve(v: Any) -> Any:
        if isinstance(v, dict):
            if len(v) == 1 and "Fn::If" in v:
                name, yes, no = v["Fn::If"]
                chosen = yes if decide(conditions[name]) else no
                return no_value if chosen == {"Ref": "AWS::NoValue"} else resolve(chosen)
            out = {k: resolve(x) for k, x in v.items()}
            return {k: x for k, x in out.items() if x is not no_value}
        if isinstance(v, list):
            return [x for x in (resolve(i) for i in v) if x is not no_value]
        return v

    try:
        for res in (sam.get("Resources") or {}).values():
            if isinstance(res, dict) and res.get("Type") == "AWS::Serverless::Function":
                res["Properties"] = resolve(res.get("Properties") or {})
    except (KeyError, ValueError, TypeError) as e:
        result.add("transform", "template", f"AWS::LanguageExtensions: {type(e).__name__}: {e}")
        return None
    sam["Transform"] = [x for x in as_list(sam.get("Transform")) if x != "AWS::LanguageExtensions"]
    return sam


def transform(sam: dict[str, Any], result: Result, parameters: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The template's transforms as CloudFormation runs them, offline: AWS::LanguageExtensions
    (when the template names it), then SAM's."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.translator import Translator

    parameters = {**DUMMY_PARAMETERS, **(parameters or {})}
    if "AWS::LanguageExtensions" in as_list(sam.get("Transform")):
        sam = language_extensions(sam, parameters, result)
        if sam is None:
            return None
    sam = copy.deepcopy(sam)
    for resource in (sam.get("Resources") or {}).values():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = CODE_PLACEHOLDER
    translator = Translator(
        managed_policy_map={},
        sam_parser=Parser(),
        plugins=[],
        boto_session=boto3.session.Session(region_name=REGION),
    )
    try:
        return translator.translate(
            sam,
            parameter_values=dict(parameters),
            passthrough_metadata=True,  # checkov skips (with their reasons) follow the resources
            get_managed_policy_map=lambda: {},
        )
    except InvalidDocumentException as e:
        for cause in e.causes:
            result.add("transform", "template", str(cause))
    except Exception as e:  # the translator raises plain exceptions for some inputs
        result.add("transform", "template", f"{type(e).__name__}: {e}")
    finally:
        translator.metrics.publish()  # a no-op publisher; silences its "unpublished" warning
    return None


# ------------------------------------------------------------------ cfn-lint (in process)


def cfn_lint(
    cfn: dict[str, Any],
    result: Result,
    baseline: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
    used_in_sam: set[str] = frozenset(),
) -> None:
    """cfn-lint on the transformed template, read with the setting's parameter values (as
    their defaults: cfn-lint checks a !Ref to a parameter against its default). A parameter
    the SAM template uses but that AWS::LanguageExtensions resolved away in this setting is
    not "unused". With a baseline (the transformed template.yaml that passed), only the
    resources that differ from it are linted, with everything they reference: what a full
    run would report about them, in a fraction of the time. Rules about unused parameters
    and conditions are then left out (the cut-down template leaves some unused)."""
    from cfnlint.decode.decode import decode_str

    if values:
        cfn = copy.deepcopy(cfn)
        for name, value in values.items():
            if name in (cfn.get("Parameters") or {}):
                cfn["Parameters"][name]["Default"] = value
    ignore: set[str] = set()
    if baseline is not None:
        reduced = changed_part(baseline, cfn)
        if reduced is not cfn:
            cfn, ignore = reduced, {"W2001", "W8001", "W7001"}
    template, errors = decode_str(json.dumps(cfn, indent=1))
    matches = errors or list(_cfn_lint_runner().validate_template(template))
    for match in matches:
        if match.rule.id in ignore:
            continue
        path = list(getattr(match, "path", None) or [])
        if match.rule.id == "W2001" and path[:1] == ["Parameters"] and len(path) > 1 and path[1] in used_in_sam:
            continue
        path = "/".join(str(p) for p in getattr(match, "path", None) or []) or "transformed template"
        result.add("cfn-lint", path, f"{match.rule.id} {match.message}")


_RUNNER = None


def _cfn_lint_runner() -> Any:
    """One cfn-lint runner per process: loading its rules costs more than a small lint."""
    global _RUNNER
    if _RUNNER is None:
        from cfnlint.config import ConfigMixIn
        from cfnlint.runner.cli import Runner

        _RUNNER = Runner(ConfigMixIn(regions=[REGION]))
    return _RUNNER


def references(value: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(value, list):
        for v in value:
            out |= references(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                out.add(v[0] if isinstance(v, list) else str(v).split(".")[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                out |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!][^}]*)\}", text)}
                if isinstance(v, list):
                    out |= references(v[1])
            elif k == "DependsOn":
                out |= set(as_list(v))
            out |= references(v)
    return out


def changed_part(baseline: dict[str, Any], cfn: dict[str, Any]) -> dict[str, Any]:
    """The resources of cfn that differ from baseline, and all they reference; cfn itself
    when anything outside Resources differs."""
    for key in set(baseline) | set(cfn):
        if key != "Resources" and baseline.get(key) != cfn.get(key):
            return cfn
    resources, before = cfn.get("Resources") or {}, baseline.get("Resources") or {}
    todo = [k for k, v in resources.items() if before.get(k) != v]
    keep: set[str] = set()
    while todo:
        name = todo.pop()
        if name in keep or name not in resources:
            continue
        keep.add(name)
        todo.extend(references(resources[name]))
    reduced = {k: v for k, v in cfn.items() if k != "Outputs"}
    reduced["Resources"] = {k: v for k, v in resources.items() if k in keep}
    return reduced


# ------------------------------------------------------------------ intrinsic resolution

PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::StackName": STACK,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/00000000-0000-0000-0000-000000000000",
}


class Unresolvable(Exception):
    pass


_NO_VALUE = object()


class Resolver:
    """Turns intrinsic functions into plausible physical values, so that policies can be
    read by an IAM linter as AWS would see them once deployed."""

    def __init__(self, cfn: dict[str, Any], parameters: dict[str, str] | None = None):
        self.cfn = cfn
        self.resources = cfn.get("Resources", {})
        self.params = {}
        given = {**DUMMY_PARAMETERS, **(parameters or {})}
        for name, p in (cfn.get("Parameters") or {}).items():
            if name in given:
                self.params[name] = given[name]
            elif isinstance(p, dict) and "Default" in p:
                self.params[name] = str(p["Default"])
        self.conditions: dict[str, bool] = {}

    def physical(self, logical: str) -> str:
        return f"{STACK}-{logical}-LINT0PHYSICAL"

    def ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.params[name]
        res = self.resources.get(name)
        if res is None:
            raise Unresolvable(f"Ref to unknown {name}")
        t, props = res.get("Type"), res.get("Properties", {}) or {}
        if t == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.physical(name)}"
        if t == "AWS::KMS::Key":
            return "1234abcd-12ab-34cd-56ef-1234567890ab"
        if t == "AWS::Lambda::Function":
            return self.value(props["FunctionName"]) if "FunctionName" in props else self.physical(name)
        if t == "AWS::Events::EventBus":
            return self.value(props["Name"])
        if t == "AWS::IAM::ManagedPolicy":
            return f"arn:aws:iam::{ACCOUNT}:policy/{self.physical(name)}"
        if t == "AWS::Logs::LogGroup" and "LogGroupName" in props:
            return self.value(props["LogGroupName"])
        return self.physical(name)

    def getatt(self, name: str, attr: str) -> str:
        res = self.resources.get(name)
        if res is None:
            raise Unresolvable(f"GetAtt of unknown resource {name}")
        t = res.get("Type")
        ref = self.ref(name)
        arns = {
            ("AWS::DynamoDB::Table", "Arn"): f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{ref}",
            # A real stream label is a timestamp with colons (2026-01-01T00:00:00.000);
            # parliament splits ARNs on ':' and would misread it, so this one has none.
            ("AWS::DynamoDB::Table", "StreamArn"): f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{ref}/stream/2026-01-01T00-00-00.000",
            ("AWS::SQS::Queue", "Arn"): f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.physical(name)}",
            ("AWS::SQS::Queue", "QueueName"): self.physical(name),
            ("AWS::SQS::Queue", "QueueUrl"): ref,
            ("AWS::KMS::Key", "Arn"): f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{ref}",
            ("AWS::KMS::Key", "KeyId"): ref,
            ("AWS::Lambda::Function", "Arn"): f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{ref}",
            ("AWS::Events::EventBus", "Arn"): f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{ref}",
            ("AWS::Events::EventBus", "Name"): ref,
            ("AWS::IAM::Role", "Arn"): f"arn:aws:iam::{ACCOUNT}:role/{ref}",
            ("AWS::IAM::ManagedPolicy", "PolicyArn"): ref,
            ("AWS::Logs::LogGroup", "Arn"): f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{ref}:*",
            ("AWS::SNS::Topic", "TopicArn"): f"arn:aws:sns:{REGION}:{ACCOUNT}:{ref}",
        }
        if (t, attr) not in arns:
            raise Unresolvable(
                f"GetAtt {name}.{attr} ({t}) is not known to infra/lib/lint_template.py's resolver"
            )
        return arns[(t, attr)]

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.value((self.cfn.get("Conditions") or {})[name]))
        return self.conditions[name]

    def value(self, v: Any) -> Any:
        if isinstance(v, list):
            return [x for x in (self.value(i) for i in v) if x is not _NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if k == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(name, attr)
            if k == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self.sub(text, {n: self.value(x) for n, x in variables.items()})
            if k == "Fn::Join":
                return arg[0].join(str(x) for x in self.value(arg[1]))
            if k == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if k == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if k == "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            if k == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if k == "Fn::Not":
                return not self.value(arg[0])
            if k == "Fn::And":
                return all(self.value(a) for a in arg)
            if k == "Fn::Or":
                return any(self.value(a) for a in arg)
            if k == "Condition":
                return self.condition(arg)
            if k.startswith("Fn::"):
                raise Unresolvable(f"{k} is not supported by the resolver")
        out = {}
        for k, x in v.items():
            x = self.value(x)
            if x is not _NO_VALUE:
                out[k] = x
        return out

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def repl(m: re.Match) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self.getatt(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", repl, text)


# ------------------------------------------------------------------ IAM documents


@dataclass
class PolicyDoc:
    resource: str  # logical id of the resource that holds it
    name: str  # policy name, or the property that holds it
    kind: str  # identity | resource | trust
    doc: Any  # as in the transformed template (intrinsics unresolved)


def policy_documents(cfn: dict[str, Any]) -> list[PolicyDoc]:
    docs = []
    for logical, res in (cfn.get("Resources") or {}).items():
        props = res.get("Properties") or {}
        t = res.get("Type")
        if t == "AWS::IAM::Role":
            if "AssumeRolePolicyDocument" in props:
                docs.append(PolicyDoc(logical, "AssumeRolePolicyDocument", "trust", props["AssumeRolePolicyDocument"]))
            for p in props.get("Policies") or []:
                docs.append(PolicyDoc(logical, p.get("PolicyName", "?"), "identity", p.get("PolicyDocument")))
        elif t in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            docs.append(PolicyDoc(logical, "PolicyDocument", "identity", props.get("PolicyDocument")))
        elif t == "AWS::KMS::Key":
            docs.append(PolicyDoc(logical, "KeyPolicy", "resource", props.get("KeyPolicy")))
        else:
            for key in ("PolicyDocument", "KeyPolicy"):
                if key in props:
                    docs.append(PolicyDoc(logical, key, "resource", props[key]))
    return docs


def as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def statements(doc: Any) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        return []
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, dict)]


def statement_id(policy: PolicyDoc, statement: dict[str, Any]) -> str:
    return statement.get("Sid") or policy.name


class Suppressions:
    def __init__(self, entries: list[dict[str, Any]]):
        for e in entries:
            if not str(e.get("reason", "")).strip():
                raise SystemExit(f"{EXPECTATIONS.name}: suppression without a reason: {e}")
        self.entries = entries
        self.used: set[int] = set()

    def match(self, check: str, issue: str, resource: str, sid: str | None) -> bool:
        for i, e in enumerate(self.entries):
            if e.get("check") != check or e.get("issue") != issue or "actions" in e:
                continue
            if not fnmatch.fnmatchcase(resource, e.get("resource", "*")):
                continue
            if "sid" in e and e["sid"] != sid:
                continue
            self.used.add(i)
            return True
        return False

    def filter_actions(self, check: str, issue: str, resource: str, sid: str | None, detail: Any) -> Any:
        """For findings that list actions (RESOURCE_MISMATCH): drop the suppressed ones."""
        if not isinstance(detail, list):
            return detail
        for i, e in enumerate(self.entries):
            if e.get("check") != check or e.get("issue") != issue or "actions" not in e:
                continue
            if not fnmatch.fnmatchcase(resource, e.get("resource", "*")) or ("sid" in e and e["sid"] != sid):
                continue
            kept = [d for d in detail if not (isinstance(d, dict) and d.get("action") in e["actions"])]
            if len(kept) < len(detail):
                self.used.add(i)
            detail = kept
        return detail


def parliament_check(cfn: dict[str, Any], resolver: Resolver, suppressions: Suppressions, result: Result) -> None:
    from parliament import analyze_policy_string, expand_action

    for policy in policy_documents(cfn):
        where = f"{policy.resource}/{policy.name}"
        try:
            resolved = resolver.value(policy.doc)
        except Unresolvable as e:
            result.add("parliament", where, f"cannot read the policy as deployed: {e}")
            continue
        if policy.kind == "trust":
            # A trust policy has no resource: only its actions can be checked.
            for st in statements(resolved):
                for action in as_list(st.get("Action")):
                    try:
                        expand_action(action)
                    except Exception as e:
                        result.add("parliament", where, f"UNKNOWN_ACTION {e}")
            continue
        if policy.kind == "resource":
            # Parliament reads identity policies: drop the principal (the rules check
            # it) and, in a key policy, read Resource "*" as what it means there: this key.
            this = None
            if (cfn["Resources"][policy.resource].get("Type")) == "AWS::KMS::Key":
                this = resolver.getatt(policy.resource, "Arn")
            resolved = {
                **resolved,
                "Statement": [
                    {
                        **{k: v for k, v in st.items() if k not in ("Principal", "NotPrincipal")},
                        **({"Resource": this} if this and st.get("Resource") == "*" else {}),
                    }
                    for st in statements(resolved)
                ],
            }
        # One statement at a time, so each finding names its statement.
        version = resolved.get("Version")
        seen: set[str] = set()
        for st in statements(resolved):
            sid = st.get("Sid")
            label = f"{where}" + (f" (Sid {sid})" if sid else "")
            if sid and sid in seen:
                result.add("parliament", label, "DUPLICATE_SID")
            seen.add(sid or "")
            doc = {"Statement": [st]} if version is None else {"Version": version, "Statement": [st]}
            for finding in analyze_policy_string(json.dumps(doc)).findings:
                detail = suppressions.filter_actions("parliament", finding.issue, policy.resource, sid, finding.detail)
                if detail == [] or suppressions.match("parliament", finding.issue, policy.resource, sid):
                    continue
                result.add("parliament", label, f"{finding.issue} {detail}")


# ------------------------------------------------------------------ template rules


def kms_context_actions() -> set[str]:
    """KMS actions for which kms:EncryptionContext:* exists (the cryptographic ones)."""
    from parliament import iam_definition

    kms = next(s for s in iam_definition if s["prefix"] == "kms")
    out = set()
    for priv in kms["privileges"]:
        for rt in priv["resource_types"]:
            if "kms:EncryptionContext:${EncryptionContextKey}" in rt["condition_keys"]:
                out.add("kms:" + priv["privilege"].lower())
    return out


def expand(action: str) -> list[str]:
    from parliament import expand_action

    try:
        return [f"{a['service']}:{a['action']}".lower() for a in expand_action(action)]
    except Exception:
        return [action.lower()]


def condition_keys(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{condition key (lower case): {operator: value}}"""
    out: dict[str, dict[str, Any]] = {}
    for op, block in (statement.get("Condition") or {}).items():
        if isinstance(block, dict):
            for k, v in block.items():
                out.setdefault(k.lower(), {})[op] = v
    return out


# The application's own encryption contexts: statement Sid -> its one purpose.
TOKEN_PURPOSES = {"RefreshTokens": "refresh_token", "AccessTokens": "access_token"}


def rules_check(
    sam: dict[str, Any], cfn: dict[str, Any], suppressions: Suppressions, result: Result, parameters: dict[str, str]
) -> None:
    def report(issue: str, resource: str, sid: str | None, where: str, message: str) -> None:
        if not suppressions.match("rules", issue, resource, sid):
            result.add("rules", where, f"{issue}: {message}")

    crypto = kms_context_actions()
    for policy in policy_documents(cfn):
        for st in statements(policy.doc):
            sid = statement_id(policy, st)
            where = f"{policy.resource}/{policy.name} (Sid {sid})"
            if st.get("Effect") != "Allow":
                continue
            actions = {a for action in as_list(st.get("Action")) if isinstance(action, str) for a in expand(action)}
            keys = condition_keys(st)
            if actions & crypto and not any(k.startswith("kms:encryptioncontext:") for k in keys):
                report("KMS_WITHOUT_ENCRYPTION_CONTEXT", policy.resource, sid, where,
                       "allows a cryptographic KMS operation without a kms:EncryptionContext:* condition")
            if sid in TOKEN_PURPOSES:
                purpose = keys.get("kms:encryptioncontext:purpose", {}).get("StringEquals")
                if purpose != TOKEN_PURPOSES[sid]:
                    report("TOKEN_PURPOSE", policy.resource, sid, where,
                           f"statement {sid} is for purpose {TOKEN_PURPOSES[sid]!r} only "
                           f'(StringEquals "kms:EncryptionContext:purpose"), not {purpose!r}')
            if "kms:encryptioncontext:purpose" in keys:
                allowed = keys.get("kms:encryptioncontextkeys", {}).get("ForAllValues:StringEquals")
                if not allowed or "sub" not in as_list(allowed):
                    report("TOKEN_CONTEXT_KEYS", policy.resource, sid, where,
                           "token statement: list the context keys, `sub` among them, in "
                           "ForAllValues:StringEquals kms:EncryptionContextKeys")
                sub = keys.get("kms:encryptioncontext:sub", {})
                if str(sub.get("Null")).lower() != "false" and not any(op.startswith("String") for op in sub):
                    report("TOKEN_CONTEXT_WITHOUT_SUB", policy.resource, sid, where,
                           'token statement: require `sub` ("Null": {"kms:EncryptionContext:sub": "false"})')
            if policy.kind == "resource":
                principal = st.get("Principal")
                for p in as_list(principal.get("AWS") if isinstance(principal, dict) else principal):
                    if p == "*" and not keys:
                        report("ANY_PRINCIPAL", policy.resource, sid, where, "allows any principal without a condition")

    key_policy_principals(cfn, crypto, report, parameters)

    # Throttling settings must name routes of the API (a deploy fails otherwise).
    routes_by_api: dict[str, set[str]] = {}
    for logical, res in (sam.get("Resources") or {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        for ev in ((res.get("Properties") or {}).get("Events") or {}).values():
            if ev.get("Type") == "HttpApi":
                p = ev.get("Properties") or {}
                api = p.get("ApiId", {}).get("Ref", "ServerlessHttpApi") if isinstance(p.get("ApiId"), dict) else "ServerlessHttpApi"
                routes_by_api.setdefault(api, set()).add(f"{str(p.get('Method', 'ANY')).upper()} {p.get('Path')}")
    for logical, res in (sam.get("Resources") or {}).items():
        if res.get("Type") == "AWS::Serverless::HttpApi":
            for key in ((res.get("Properties") or {}).get("RouteSettings") or {}):
                if key not in routes_by_api.get(logical, set()):
                    report("UNKNOWN_ROUTE", logical, None, f"{logical}/RouteSettings", f'"{key}" is not a route of this API')

    # An SQS event source needs a visibility timeout at least the function's timeout: a SAM
    # `Type: SQS` event or an AWS::Lambda::EventSourceMapping of the template.
    sam_resources = sam.get("Resources") or {}
    globals_timeout = ((sam.get("Globals") or {}).get("Function") or {}).get("Timeout", 3)

    def getatt_name(v: Any) -> str | None:
        arg = v.get("Fn::GetAtt") if isinstance(v, dict) else None
        return (arg[0] if isinstance(arg, list) else str(arg).split(".")[0]) if arg else None

    sqs_sources = []  # (function, queue, where)
    for logical, res in sam_resources.items():
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::Serverless::Function":
            for name, ev in (props.get("Events") or {}).items():
                if ev.get("Type") == "SQS":
                    queue = getatt_name((ev.get("Properties") or {}).get("Queue"))
                    sqs_sources.append((logical, queue, f"{logical}/Events/{name}"))
        elif res.get("Type") == "AWS::Lambda::EventSourceMapping":
            fn = props.get("FunctionName")
            fn = fn.get("Ref") if isinstance(fn, dict) else fn
            queue = getatt_name(props.get("EventSourceArn"))
            if sam_resources.get(queue or "", {}).get("Type") == "AWS::SQS::Queue":
                sqs_sources.append((fn, queue, logical))
    for function, qname, where in sqs_sources:
        timeout = ((sam_resources.get(function or "") or {}).get("Properties") or {}).get("Timeout", globals_timeout)
        qres = sam_resources.get(qname or "", {})
        vt = (qres.get("Properties") or {}).get("VisibilityTimeout", 30)
        if isinstance(vt, int) and isinstance(timeout, int) and vt < timeout:
            report("VISIBILITY_BELOW_TIMEOUT", function or where, None, where,
                   f"queue {qname} VisibilityTimeout {vt} s is below the function's Timeout {timeout} s")

    event_source_permissions(cfn, report, parameters)
    schedules(cfn, report)
    emf_alarms(cfn, report)
    capacity_provider(cfn, report, parameters)


EMF_NAMESPACE = "GoogleOfflineAccess"
# Lambda Managed Instances' smallest execution environment.
MANAGED_INSTANCES_MIN_MEMORY = 2048


def capacity_provider(cfn: dict[str, Any], report: Any, parameters: dict[str, str]) -> None:
    """With CapacityProviderArn set, every function that serves requests (all but those a
    schedule runs) is on that capacity provider, with PerEnvironmentMaxConcurrency and the
    memory Lambda Managed Instances need; a scheduled function never is; with it empty, no
    function is."""
    resolver = Resolver(cfn, parameters)
    arn = resolver.params.get("CapacityProviderArn", "")
    concurrency = resolver.params.get("PerEnvironmentMaxConcurrency")
    resources = cfn.get("Resources") or {}
    scheduled = set()
    for res in resources.values():
        if res.get("Type") == "AWS::Scheduler::Schedule":
            target = ((res.get("Properties") or {}).get("Target") or {}).get("Arn")
            if isinstance(target, dict) and "Fn::GetAtt" in target:
                scheduled.add(target["Fn::GetAtt"][0])
    for logical, res in resources.items():
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        props = res.get("Properties") or {}
        try:
            config = resolver.value((props.get("CapacityProviderConfig") or {}).get("LambdaManagedInstancesCapacityProviderConfig"))
            memory = resolver.value(props.get("MemorySize", 128))
        except Unresolvable as e:
            report("CAPACITY_PROVIDER", logical, None, logical, f"cannot resolve: {e}")
            continue
        where = f"{logical}/CapacityProviderConfig"
        if arn and logical not in scheduled:
            if not config or config.get("CapacityProviderArn") != arn:
                report("CAPACITY_PROVIDER", logical, None, where,
                       "serves requests: with CapacityProviderArn set it runs on that capacity provider")
                continue
            if str(config.get("PerExecutionEnvironmentMaxConcurrency")) != str(concurrency):
                report("CAPACITY_PROVIDER", logical, None, where,
                       f"PerExecutionEnvironmentMaxConcurrency {config.get('PerExecutionEnvironmentMaxConcurrency')!r}, "
                       "expected PerEnvironmentMaxConcurrency's value")
            if int(memory) < MANAGED_INSTANCES_MIN_MEMORY:
                report("CAPACITY_PROVIDER", logical, None, f"{logical}/MemorySize",
                       f"{memory} MB: Lambda Managed Instances need {MANAGED_INSTANCES_MIN_MEMORY} MB at least")
        elif config is not None:
            why = "a schedule runs it" if logical in scheduled else "CapacityProviderArn is empty"
            report("CAPACITY_PROVIDER", logical, None, where, f"on a capacity provider, but {why}")


def emf_alarms(cfn: dict[str, Any], report: Any) -> None:
    """An alarm on the functions' EMF counts must name the one dimension set they are
    written under, Function = a function of this stack (a metric is identified by all its
    dimensions: any other set names a metric that never has data, an alarm that never fires)."""
    resources = cfn.get("Resources") or {}
    functions = {k for k, v in resources.items() if v.get("Type") == "AWS::Lambda::Function"}
    for logical, res in resources.items():
        if res.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = res.get("Properties") or {}
        metrics = [(logical, props)] + [
            (f"{logical}/Metrics/{m.get('Id')}", (m.get("MetricStat") or {}).get("Metric") or {})
            for m in props.get("Metrics") or []
        ]
        for where, metric in metrics:
            if metric.get("Namespace") != EMF_NAMESPACE:
                continue
            dims = metric.get("Dimensions") or []
            ok = (
                len(dims) == 1
                and dims[0].get("Name") == "Function"
                and isinstance(dims[0].get("Value"), dict)
                and dims[0]["Value"].get("Ref") in functions
            )
            if not ok:
                report("EMF_ALARM_DIMENSIONS", logical, None, where,
                       f"{metric.get('MetricName')} is written with the one dimension Function = "
                       f"a function's name (!Ref); {dims} names a metric without data")


def schedules(cfn: dict[str, Any], report: Any) -> None:
    """EventBridge Scheduler schedules: each run gets the input {} (any other input, such as
    the sweeper's one-time backfill, is for a run started by hand), and a schedule's name is
    generated or derived from the stack's (a fixed name clashes with the same schedule of
    another stack in the account)."""
    for logical, res in (cfn.get("Resources") or {}).items():
        if res.get("Type") != "AWS::Scheduler::Schedule":
            continue
        props = res.get("Properties") or {}
        given = (props.get("Target") or {}).get("Input")
        try:
            parsed = json.loads(given) if isinstance(given, str) else None
        except ValueError:
            parsed = None
        if parsed != {}:
            report("SCHEDULE_INPUT", logical, None, f"{logical}/Target/Input",
                   f"{given!r}: a scheduled run gets {{}}")
        if isinstance(props.get("Name"), str):
            report("SCHEDULE_NAME", logical, None, f"{logical}/Name",
                   f"fixed name {props['Name']!r}: another stack in the account would clash with it "
                   "(OmitName: true, or a name with the stack's)")


# What an event source mapping does with its function's role, by the source's kind.
MAPPING_ACTIONS = {
    "sqs": {"sqs:receivemessage", "sqs:deletemessage", "sqs:getqueueattributes"},
    "dynamodb": {"dynamodb:describestream", "dynamodb:getrecords", "dynamodb:getsharditerator"},
}
# The managed policies SAM attaches for event sources: on every queue or stream of the account.
EVENT_SOURCE_MANAGED_POLICIES = {
    "AWSLambdaSQSQueueExecutionRole", "AWSLambdaDynamoDBExecutionRole", "AWSLambdaKinesisExecutionRole",
}


def event_source_permissions(cfn: dict[str, Any], report: Any, parameters: dict[str, str]) -> None:
    """Each event source mapping's function may read exactly its source (the queue, the
    table's stream) and send to its on-failure destination, through statements on those ARNs;
    the role holds no statement that reads any other queue or stream, and none of SAM's
    managed event source policies."""
    resolver = Resolver(cfn, parameters)
    resources = cfn.get("Resources") or {}
    needed: dict[str, set[tuple[str, str]]] = {}  # role -> {(action, resource)}
    for logical, res in resources.items():
        if res.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        props = res.get("Properties") or {}
        fn = props.get("FunctionName")
        fn = fn.get("Ref") if isinstance(fn, dict) else fn
        found = role_of(cfn, fn) if isinstance(fn, str) else None
        if not found:
            report("EVENT_SOURCE_PERMISSIONS", logical, None, logical, "its function has no role of this template")
            continue
        try:
            source = resolver.value(props.get("EventSourceArn"))
            destination = resolver.value(((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"))
        except Unresolvable as e:
            report("EVENT_SOURCE_PERMISSIONS", logical, None, logical, f"cannot resolve: {e}")
            continue
        service = str(source).split(":")[2] if str(source).startswith("arn:") else ""
        pairs = needed.setdefault(found[0], set())
        pairs |= {(a, source) for a in MAPPING_ACTIONS.get(service, set())}
        if isinstance(destination, str) and destination.startswith("arn:aws:sqs:"):
            pairs.add(("sqs:sendmessage", destination))
    read_actions = set().union(*MAPPING_ACTIONS.values())
    for logical, res in resources.items():
        if res.get("Type") != "AWS::IAM::Role":
            continue
        props = res.get("Properties") or {}
        for arn in props.get("ManagedPolicyArns") or []:
            name = str(arn.get("Fn::Sub", arn) if isinstance(arn, dict) else arn).rsplit("/", 1)[-1]
            if name in EVENT_SOURCE_MANAGED_POLICIES:
                report("EVENT_SOURCE_PERMISSIONS", logical, None, f"{logical}/ManagedPolicyArns",
                       f"{name} reads every queue or stream of the account: allow the mapping's own source instead")
        granted: set[tuple[str, str]] = set()
        for p in props.get("Policies") or []:
            for st in statements(p.get("PolicyDocument")):
                if st.get("Effect") != "Allow":
                    continue
                try:
                    targets = [str(r) for r in as_list(resolver.value(st.get("Resource")))]
                except Unresolvable:
                    continue  # parliament reports it
                actions = {a for action in as_list(st.get("Action")) if isinstance(action, str) for a in expand(action)}
                sid = st.get("Sid") or p.get("PolicyName")
                for a in actions & (read_actions | {"sqs:sendmessage"}):
                    for r in targets:
                        granted.add((a, r))
                        if a in read_actions and (a, r) not in needed.get(logical, set()):
                            report("EVENT_SOURCE_PERMISSIONS", logical, sid, f"{logical}/{p.get('PolicyName')} (Sid {sid})",
                                   f"{a} on {r}, which is not the source of one of its function's event source mappings")
        for a, r in sorted(needed.get(logical, set()) - granted):
            report("EVENT_SOURCE_PERMISSIONS", logical, None, logical,
                   f"its event source mapping needs {a} on {r}, which no statement allows")


def key_policy_principals(cfn: dict[str, Any], crypto: set[str], report: Any, parameters: dict[str, str]) -> None:
    """Who may use the key for the application's own tokens. Every function role lives
    under one IAM path of this stack alone (its unique id in it: the name alone is shared by
    a stack of the same name in another Region), and every key policy statement that allows
    a cryptographic operation is either DynamoDB's own (kms:ViaService and the table's
    context) or limited by aws:PrincipalArn to the roles under that path. So a role of the
    account with kms:Decrypt on "*" in its IAM policy still cannot decrypt a token."""
    resolver = Resolver(cfn, parameters)
    resources = cfn.get("Resources") or {}
    stack_uuid = PSEUDO["AWS::StackId"].rsplit("/", 1)[-1]
    paths: dict[str, str] = {}
    for logical, res in resources.items():
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        found = role_of(cfn, logical)
        if not found:
            continue
        role_name, role = found
        try:
            path = resolver.value((role.get("Properties") or {}).get("Path", "/"))
        except Unresolvable as e:
            report("FUNCTION_ROLE_PATH", role_name, None, f"{role_name}/Path", f"cannot resolve: {e}")
            continue
        paths[role_name] = path
        if not isinstance(path, str) or stack_uuid not in path.split("/"):
            report("FUNCTION_ROLE_PATH", role_name, None, f"{role_name}/Path",
                   f"{path!r} is not a path of this stack alone: name the stack's unique id "
                   "(from AWS::StackId) in the function's RolePath")
    if len(set(paths.values())) > 1:
        report("FUNCTION_ROLE_PATH", "*", None, "function roles",
               f"the function roles are under different paths: {sorted(set(paths.values()))}")
    allowed = {f"arn:aws:iam::{ACCOUNT}:role{p}*" for p in paths.values()}

    for logical, res in resources.items():
        if res.get("Type") != "AWS::KMS::Key":
            continue
        for st in statements((res.get("Properties") or {}).get("KeyPolicy")):
            sid = st.get("Sid")
            where = f"{logical}/KeyPolicy (Sid {sid})"
            actions = {a for action in as_list(st.get("Action")) if isinstance(action, str) for a in expand(action)}
            if st.get("Effect") != "Allow" or not actions & crypto:
                continue
            keys = condition_keys(st)
            if "kms:viaservice" in keys and "kms:encryptioncontext:aws:dynamodb:tablename" in keys:
                continue  # DynamoDB's use of the key for the table, through DynamoDB only
            arns = {op: v for op, v in keys.get("aws:principalarn", {}).items() if op in ("ArnLike", "ArnEquals")}
            if not arns:
                report("KEY_POLICY_BEYOND_FUNCTIONS", logical, sid, where,
                       "allows a cryptographic operation to principals beyond this stack's function roles: "
                       "add ArnLike aws:PrincipalArn for the roles under the functions' RolePath")
                continue
            try:
                values = {str(v) for block in arns.values() for v in as_list(resolver.value(block))}
            except Unresolvable as e:
                report("KEY_POLICY_BEYOND_FUNCTIONS", logical, sid, where, f"cannot resolve aws:PrincipalArn: {e}")
                continue
            if not allowed or not values <= allowed:
                report("KEY_POLICY_BEYOND_FUNCTIONS", logical, sid, where,
                       f"aws:PrincipalArn {sorted(values)} is not the function roles' path {sorted(allowed)}")


# ------------------------------------------------------------------ expectations


def role_of(cfn: dict[str, Any], function: str) -> tuple[str, dict[str, Any]] | None:
    fn = (cfn.get("Resources") or {}).get(function)
    if not fn or fn.get("Type") != "AWS::Lambda::Function":
        return None
    role = (fn.get("Properties") or {}).get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        name = role["Fn::GetAtt"][0]
        return name, cfn["Resources"][name]
    return None


def grants(policies: list[PolicyDoc]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for policy in policies:
        for st in statements(policy.doc):
            out.setdefault(statement_id(policy, st), []).extend(as_list(st.get("Action")))
    return {k: sorted(v) for k, v in out.items()}


def index_reach(
    cfn: dict[str, Any], role_name: str, policies: list[PolicyDoc], want: dict[str, list[str]], result: Result,
    parameters: dict[str, str],
) -> None:
    """Which of the template's table indexes each Query/Scan statement reaches (index ARNs
    may be globs), against the expectations' `indexes`. Query on a table itself is refused:
    the functions query indexes (and read items by key)."""
    resolver = Resolver(cfn, parameters)
    tables: dict[str, list[str]] = {}
    for logical, res in (cfn.get("Resources") or {}).items():
        if res.get("Type") == "AWS::DynamoDB::Table":
            props = res.get("Properties") or {}
            tables[resolver.getatt(logical, "Arn")] = [
                i.get("IndexName") for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
                for i in props.get(key) or []
            ]
    got: dict[str, set[str]] = {}
    for policy in policies:
        for st in statements(policy.doc):
            sid = statement_id(policy, st)
            actions = {a for action in as_list(st.get("Action")) if isinstance(action, str) for a in expand(action)}
            if not actions & {"dynamodb:query", "dynamodb:scan"}:
                continue
            try:
                targets = [str(r) for r in as_list(resolver.value(st.get("Resource")))]
            except Unresolvable:
                continue  # parliament reports it
            for target in targets:
                table, _, index = target.partition("/index/")
                if table not in tables:
                    continue
                if not index:
                    if "dynamodb:query" in actions:
                        result.add("expectations", f"{role_name} (Sid {sid})",
                                   "Query on the table itself: the code queries indexes (and reads items by key)")
                    continue
                matched = {name for name in tables[table] if fnmatch.fnmatchcase(name, index)}
                if not matched:
                    result.add("expectations", f"{role_name} (Sid {sid})", f"index {index!r} matches no index of the table")
                got.setdefault(sid, set()).update(matched)
    for sid in sorted(set(got) | set(want)):
        if got.get(sid, set()) != set(want.get(sid, [])):
            result.add("expectations", f"{role_name} (Sid {sid})",
                       f"reaches the indexes {sorted(got.get(sid, set()))}, expected {sorted(want.get(sid, []))}")


def expectations_check(cfn: dict[str, Any], expectations: dict[str, Any], result: Result, parameters: dict[str, str]) -> None:
    resources = cfn.get("Resources") or {}
    functions = expectations.get("functions") or {}
    deployed = {k for k, v in resources.items() if v.get("Type") == "AWS::Lambda::Function"}
    for missing in sorted(deployed - set(functions)):
        result.add("expectations", missing, f"function not listed in {EXPECTATIONS.name}")
    for function, want in functions.items():
        found = role_of(cfn, function)
        if not found:
            result.add("expectations", function, "listed but not a function with its own role in the template")
            continue
        role_name, role = found
        props = role.get("Properties") or {}
        policies = [
            PolicyDoc(role_name, p.get("PolicyName", "?"), "identity", p.get("PolicyDocument"))
            for p in props.get("Policies") or []
        ]
        got = grants(policies)
        expected = {sid: sorted(actions) for sid, actions in {**(want.get("policy") or {}), **(want.get("generated") or {})}.items()}
        for sid in sorted(set(got) | set(expected)):
            g, e = got.get(sid), expected.get(sid)
            if g is None:
                result.add("expectations", f"{role_name} (Sid {sid})", f"expected statement missing: {e}")
            elif e is None:
                result.add("expectations", f"{role_name} (Sid {sid})", f"grants {g}, which {EXPECTATIONS.name} does not list for {function}")
            elif g != e:
                result.add("expectations", f"{role_name} (Sid {sid})", f"grants {g}, expected {e}")
        for policy in policies:
            for st in statements(policy.doc):
                sid = statement_id(policy, st)
                if st.get("Effect") != "Allow":
                    result.add("expectations", f"{role_name} (Sid {sid})", f"Effect {st.get('Effect')!r}: function policies only allow")
                if any(isinstance(a, str) and "*" in a for a in as_list(st.get("Action"))):
                    result.add("expectations", f"{role_name} (Sid {sid})", "wildcard action")
                if "*" in as_list(st.get("Resource")):
                    result.add("expectations", f"{role_name} (Sid {sid})", 'Resource "*"')
        index_reach(cfn, role_name, policies, want.get("indexes") or {}, result, parameters)
        managed = sorted(
            str(arn.get("Fn::Sub", arn) if isinstance(arn, dict) else arn).rsplit("/", 1)[-1]
            for arn in props.get("ManagedPolicyArns") or []
        )
        if managed != sorted(want.get("managed") or []):
            result.add("expectations", role_name, f"managed policies {managed}, expected {sorted(want.get('managed') or [])}")
    for name, want in (expectations.get("managed_policies") or {}).items():
        res = resources.get(name)
        if not res or res.get("Type") != "AWS::IAM::ManagedPolicy":
            result.add("expectations", name, "listed managed policy not in the template")
            continue
        got = grants([PolicyDoc(name, "PolicyDocument", "identity", (res.get("Properties") or {}).get("PolicyDocument"))])
        want = {sid: sorted(a) for sid, a in want.items()}
        if got != want:
            result.add("expectations", name, f"grants {got}, expected {want}")
    schedule_roles = {}
    for function, want in functions.items():
        for role_name, policies in (want.get("schedule_roles") or {}).items():
            schedule_roles[role_name] = function
            role = resources.get(role_name)
            if not role or role.get("Type") != "AWS::IAM::Role":
                result.add("expectations", role_name, f"listed schedule role of {function} not in the template")
                continue
            props = role.get("Properties") or {}
            trust = [p for st in statements(props.get("AssumeRolePolicyDocument"))
                     for p in as_list((st.get("Principal") or {}).get("Service"))]
            if trust != ["scheduler.amazonaws.com"]:
                result.add("expectations", role_name, f"assumed by {trust}, expected EventBridge Scheduler only")
            got = {}
            for p in props.get("Policies") or []:
                for st in statements(p.get("PolicyDocument")):
                    got.setdefault(statement_id(PolicyDoc(role_name, p.get("PolicyName", "?"), "identity", None), st), []).extend(
                        as_list(st.get("Action")))
                    if st.get("Resource") != {"Fn::GetAtt": [function, "Arn"]}:
                        result.add("expectations", role_name, f"allows {st.get('Action')} on {st.get('Resource')}, expected {function} only")
            got = {k: sorted(v) for k, v in got.items()}
            want_sorted = {k: sorted(v) for k, v in policies.items()}
            if got != want_sorted:
                result.add("expectations", role_name, f"grants {got}, expected {want_sorted}")
            if props.get("ManagedPolicyArns"):
                result.add("expectations", role_name, f"managed policies {props['ManagedPolicyArns']}, expected none")
    listed = set(expectations.get("managed_policies") or {}) | set(schedule_roles)
    for k, v in resources.items():
        if v.get("Type") in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::Role") and k not in listed:
            if v.get("Type") == "AWS::IAM::Role" and any(
                (role_of(cfn, f) or ("",))[0] == k for f in functions
            ):
                continue
            result.add("expectations", k, f"IAM resource not listed in {EXPECTATIONS.name}")


# ------------------------------------------------------------------ parameters


def parameter_problems(name: str, spec: dict[str, Any], value: Any) -> list[str]:
    out = []
    s = str(value).lower() if isinstance(value, bool) else str(value)
    if "AllowedValues" in spec and s not in [str(v).lower() if isinstance(v, bool) else str(v) for v in spec["AllowedValues"]]:
        out.append(f"{s!r} is not in AllowedValues")
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], s):
        out.append(f"{s!r} does not match AllowedPattern {spec['AllowedPattern']}")
    if spec.get("Type") == "Number":
        try:
            n = float(s)
            if "MinValue" in spec and n < float(spec["MinValue"]):
                out.append(f"{s} is below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and n > float(spec["MaxValue"]):
                out.append(f"{s} is above MaxValue {spec['MaxValue']}")
        except ValueError:
            out.append(f"{s!r} is not a number")
    for bound, op in (("MinLength", lambda a, b: a < b), ("MaxLength", lambda a, b: a > b)):
        if bound in spec and op(len(s), int(spec[bound])):
            out.append(f"length {len(s)} violates {bound} {spec[bound]}")
    return out


def samconfig_parameters(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        config = tomllib.load(f)
    overrides = config.get("default", {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", [])
    if isinstance(overrides, str):
        overrides = re.findall(r'(\w+)=("[^"]*"|\S+)', overrides)
        return {k: v.strip('"') for k, v in overrides}
    return dict(item.split("=", 1) for item in overrides)


def rule_value(v: Any, values: dict[str, str]) -> Any:
    """The template's Rules, evaluated for parameter values (the functions Rules use here)."""
    if isinstance(v, dict) and len(v) == 1:
        (k, arg), = v.items()
        if k == "Ref":
            return values.get(arg, "")
        if k == "Fn::Equals":
            return str(rule_value(arg[0], values)) == str(rule_value(arg[1], values))
        if k == "Fn::Not":
            return not rule_value(arg[0], values)
        if k == "Fn::And":
            return all(rule_value(a, values) for a in arg)
        if k == "Fn::Or":
            return any(rule_value(a, values) for a in arg)
        raise ValueError(f"{k} in Rules is not known to infra/lib/lint_template.py")
    return v


def rules_hold(sam: dict[str, Any], values: dict[str, str], where: str, result: Result) -> None:
    for name, rule in (sam.get("Rules") or {}).items():
        try:
            if "RuleCondition" in rule and not rule_value(rule["RuleCondition"], values):
                continue
            for assertion in rule.get("Assertions") or []:
                if not rule_value(assertion.get("Assert"), values):
                    result.add("parameters", f"{where}: Rules/{name}", str(assertion.get("AssertDescription", "assertion fails")))
        except ValueError as e:
            result.add("parameters", f"Rules/{name}", str(e))


def parameters_check(sam: dict[str, Any], samconfig: Path | None, result: Result) -> None:
    params = sam.get("Parameters") or {}
    defaults = {n: str(s["Default"]).lower() if isinstance(s.get("Default"), bool) else str(s.get("Default", DUMMY_PARAMETERS.get(n, "")))
                for n, s in params.items()}
    rules_hold(sam, defaults, "parameter defaults", result)
    for name, spec in params.items():
        if "Default" in spec:
            for p in parameter_problems(name, spec, spec["Default"]):
                result.add("parameters", f"Parameters/{name}/Default", p)
        if name in DUMMY_PARAMETERS:
            for p in parameter_problems(name, spec, DUMMY_PARAMETERS[name]):
                result.add("parameters", f"lint dummy value for {name}", p)
        elif "Default" not in spec:
            result.add("parameters", f"Parameters/{name}", "no Default and no dummy value in infra/lib/lint_template.py")
    if samconfig is None:
        return
    rules_hold(sam, {**defaults, **samconfig_parameters(samconfig)}, samconfig.name, result)
    for name, value in samconfig_parameters(samconfig).items():
        where = f"{samconfig.name} parameter_overrides {name}"
        if name not in params:
            result.add("parameters", where, "not a parameter of the template")
            continue
        problems = parameter_problems(name, params[name], value)
        if PLACEHOLDER_MARK in value:
            if not problems:
                result.add("parameters", where, f"placeholder {value!r} passes the template's constraints: it could be deployed by mistake")
        else:
            for p in problems:
                result.add("parameters", where, p)


# ------------------------------------------------------------------ the check


def check(
    text: str,
    stages: set[str],
    expectations: dict[str, Any],
    samconfig: Path | None,
    baseline: dict[str, Any] | None = None,
    setting: str = "ordinary",
) -> Result:
    result = Result()
    try:
        sam = parse_sam(text)
    except Exception as e:
        result.add("transform", "template", f"not YAML: {e}")
        return result
    suppressions = Suppressions(expectations.get("suppressions") or [])
    if "parameters" in stages:
        parameters_check(sam, samconfig, result)
    parameters = {**DUMMY_PARAMETERS, **SETTINGS[setting]}
    cfn = transform(sam, result, parameters)
    result.cfn = cfn
    if cfn is None:
        return result
    if "rules" in stages:
        rules_check(sam, cfn, suppressions, result, parameters)
    if "expectations" in stages:
        expectations_check(cfn, expectations, result, parameters)
    if "parliament" in stages:
        parliament_check(cfn, Resolver(cfn, parameters), suppressions, result)
    if "cfn-lint" in stages:
        used_in_sam = references(sam.get("Resources") or {}) | references(sam.get("Globals") or {})
        cfn_lint(cfn, result, baseline, SETTINGS[setting], used_in_sam)
    result.suppressions_used = set(suppressions.used)
    return result


# ------------------------------------------------------------------ fixtures


def block_span(text: str, block: str) -> tuple[int, int]:
    """The text of a top-level section (`Globals`) or of a resource (`WorkerFunction`)."""
    top = re.search(rf"^{re.escape(block)}:[ \t]*$", text, re.M)
    if top:
        start, end_at = top.start(), re.compile(r"^\S", re.M)
    else:
        resources = re.search(r"^Resources:[ \t]*$", text, re.M)
        m = re.compile(rf"^  {re.escape(block)}:[ \t]*$", re.M).search(text, resources.end() if resources else 0)
        if not m:
            raise LookupError(f"no section or resource {block}")
        start, end_at = m.start(), re.compile(r"^(  \S|\S)", re.M)
    m = end_at.search(text, text.index("\n", start) + 1)
    return start, (m.start() if m else len(text))


def apply_fixture(text: str, fixture: dict[str, Any]) -> str:
    start, end = block_span(text, fixture["in"])
    block = text[start:end]
    old, new = fixture["replace"], fixture["with"]
    if block.count(old) < 1:
        raise LookupError(f"{fixture['name']}: {old!r} not found in {fixture['in']}: update the fixture")
    return text[:start] + block.replace(old, new, 1) + text[end:]


def run_fixture(
    args: tuple[str, dict[str, Any], dict[str, Any], dict[str, dict[str, Any] | None]],
) -> tuple[str, list[str], str | None, float]:
    text, fixture, expectations, baselines = args
    t = time.monotonic()
    want = set(as_list(fixture["caught_by"]))
    setting = fixture.get("setting", "ordinary")
    if setting not in SETTINGS:
        return fixture["name"], [], f"unknown setting {setting!r} (one of {sorted(SETTINGS)})", 0.0
    try:
        mutated = apply_fixture(text, fixture)
    except LookupError as e:
        return fixture["name"], [], str(e), 0.0
    # Run the stages the fixture names (each must find it); the transform always runs.
    result = check(mutated, want, expectations, SAMCONFIG if "parameters" in want else None,
                   baselines.get(setting), setting)
    found = sorted(result.stages())
    missing = want - set(found)
    error = None
    if missing:
        error = f"not caught by {', '.join(sorted(missing))} (found: {[str(p) for p in result.problems] or 'nothing'})"
    return fixture["name"], [str(p) for p in result.problems if p.stage in want], error, time.monotonic() - t


# ------------------------------------------------------------------ main


def start_subprocesses(template: Path, cfn_paths: list[Path]) -> dict[str, subprocess.Popen]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    files = [arg for path in [template, *cfn_paths] for arg in ("-f", str(path))]
    return {
        "sam validate --lint": subprocess.Popen(
            ["sam", "validate", "--lint", "--template", str(template)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env,
        ),
        "checkov": subprocess.Popen(
            ["checkov", *files, "--framework", "cloudformation", "--skip-download", "--quiet", "--compact"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env,
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--no-fixtures", action="store_true", help="check the template only")
    parser.add_argument("--fixtures-only", action="store_true", help="skip sam validate and checkov")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()

    t0 = time.monotonic()
    expectations = load_yaml(EXPECTATIONS)
    text = args.template.read_text(encoding="utf-8")
    OUT.mkdir(parents=True, exist_ok=True)

    # sam validate and checkov run in the background while the checks below run here.
    procs: dict[str, subprocess.Popen] = {}
    if not args.fixtures_only:
        cfn_paths = []
        for setting, values in SETTINGS.items():
            cfn = transform(parse_sam(text), Result(), values)
            if cfn is None:
                continue  # the check below reports why
            cfn_path = OUT / ("template.cfn.json" if setting == "ordinary" else f"template.{setting}.cfn.json")
            cfn_path.write_text(json.dumps(cfn, indent=1) + "\n", encoding="utf-8")
            cfn_paths.append(cfn_path)
            print(f"transformed template ({setting}): {cfn_path.relative_to(ROOT)} ({len(cfn.get('Resources', {}))} resources)")
        procs = start_subprocesses(args.template, cfn_paths)

    # The template itself in each setting, every in-process check (this also warms the
    # linters up for the fixture workers forked below). Parameters do not depend on the
    # setting: checked once.
    failed = False
    baselines: dict[str, dict[str, Any] | None] = {}
    used: set[int] = set()
    for setting in SETTINGS:
        stages = set(STAGES) if setting == "ordinary" else set(STAGES) - {"parameters"}
        result = check(text, stages, expectations, SAMCONFIG if setting == "ordinary" else None, None, setting)
        used |= result.suppressions_used
        baselines[setting] = result.cfn if not result.problems else None
        failed = failed or bool(result.problems)
        for p in result.problems:
            print(f"FAIL ({setting}) {p}")
        if not result.problems:
            print(f"ok   {args.template.name} ({setting}): transform, cfn-lint (transformed), parliament, "
                  f"IAM expectations, rules{', parameters' if 'parameters' in stages else ''}")
    for i, e in enumerate((expectations.get("suppressions") or [])):
        if i not in used:
            failed = True
            print(f"FAIL [expectations] {EXPECTATIONS.name}: suppression no longer needed: {e}")

    if not args.no_fixtures:
        fixtures = load_yaml(FIXTURES)
        work = [(text, f, expectations, baselines) for f in fixtures]
        caught = 0
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
            for name, found, error, secs in pool.map(run_fixture, work):
                if error:
                    failed = True
                    print(f"FAIL fixture {name!r}: {error}")
                else:
                    caught += 1
                    print(f"ok   fixture {name!r} ({secs:.1f} s): {found[0]}")
        print(f"fixtures: {caught}/{len(fixtures)} deliberate mistakes caught")

    for name, proc in procs.items():
        out, _ = proc.communicate()
        if proc.returncode != 0:
            failed = True
            print(f"FAIL {name}:\n{out}")
        else:
            summary = " ".join(line.strip() for line in out.splitlines() if line.strip())
            print(f"ok   {name}: {summary}")

    print(f"lint-template: {'FAILED' if failed else 'passed'} in {time.monotonic() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
