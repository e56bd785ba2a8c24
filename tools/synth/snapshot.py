"""The desired state of one stack as plain, stable, redacted data.

Every view of a synth (tree, JSON snapshot, diff, graph) reads this one structure, never the raw
registrations, so redaction happens in exactly one place: a value the program marked secret is
`[secret]` here and therefore everywhere downstream.

Shape (format 1), sorted by key when written:

    {"format": 1, "project": ..., "stack": ...,
     "resources": {URN: {"type", "name", "parent", "custom", "protect", "provider",
                         "dependencies", "deleteBeforeReplace", "inputs",
                         "ignoreChanges" (only when the program sets it)}},
     "outputs": {...}, "logs": [...]}

URNs are rewritten from the mock monitor's short form to the engine's: the full chain of parent
types, without the root stack (`...::Platform$HybridLoadBalancer$aws:lb/...::shop-nlb`), so a
snapshot's keys match what `pulumi preview` and `pulumi stack export` show.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import rpc

from model.stackfile import PROJECT, SECRET_PLACEHOLDER
from tools.synth.synthesis import Registered, Synthesis

FORMAT = 1
SECRET = SECRET_PLACEHOLDER
UNKNOWN = "[unknown]"
# Secrets reach the mock monitor as `{SIG_KEY: SECRET_SIG, "value": plaintext}`.
SIG_KEY = rpc._special_sig_key
SECRET_SIG = rpc._special_secret_sig
# Plaintexts shorter than this are not scrubbed from free text (they would match everywhere).
MIN_SCRUB = 4


class DuplicateUrn(ValueError):
    """Two registrations share a URN; the engine would refuse the whole update."""


def snapshot(synthesis: Synthesis) -> dict[str, Any]:
    """Everything `synthesis` declared, normalised and redacted, keyed by engine URN."""
    _refuse_duplicates(synthesis.resources)
    urns = engine_urns(synthesis.resources)
    secrets: set[str] = set()
    resources = {urns[r.urn]: _resource(r, urns, secrets) for r in synthesis.resources}
    return {
        "format": FORMAT,
        "project": PROJECT,
        "stack": synthesis.stack,
        "resources": resources,
        "outputs": normalise(synthesis.outputs, secrets),
        "logs": sorted(scrub(line, secrets) for line in synthesis.logs),
    }


def dumps(snap: Mapping[str, Any]) -> str:
    """The snapshot as text that is byte-identical for identical content (sorted, fixed layout)."""
    return json.dumps(snap, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def loads(text: str, source: str = "snapshot") -> dict[str, Any]:
    """Read a snapshot written by `dumps`, refusing other formats with the reason."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{source}: not a synth snapshot of format {FORMAT} (found {found!r})")
    return data


def normalise(value: Any, secrets: set[str] | None = None) -> Any:
    """Plain JSON data: secrets redacted, unknowns marked, integral floats as ints.

    The wire format has only doubles, so `443` arrives as `443.0`; writing it back as an int keeps
    snapshots readable and equal to the stack file. Plaintexts met inside secrets are added to
    `secrets` so free text (logs) can be scrubbed of them.
    """
    if rpc.is_rpc_secret(value):
        if secrets is not None:
            secrets.update(_strings(value.get("value")))
        return SECRET
    if isinstance(value, Unknown):
        return UNKNOWN
    if value is None or isinstance(value, bool | str | int):
        return UNKNOWN if value == rpc.UNKNOWN else value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): normalise(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v, secrets) for v in value]
    return _opaque(value)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every known secret plaintext replaced by the placeholder."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SCRUB and secret != SECRET:
            text = text.replace(secret, SECRET)
    return text


def engine_urns(resources: Iterable[Registered]) -> dict[str, str]:
    """Mock URN → the URN the engine would give the same resource.

    The mock monitor qualifies a type with its parent's type only; the engine uses every
    ancestor's type except the root stack's.
    """
    by_urn = {r.urn: r for r in resources}
    qualified: dict[str, str] = {}

    def chain(r: Registered) -> str:
        if r.urn not in qualified:
            parent = by_urn.get(r.parent or "")
            qualified[r.urn] = r.type if parent is None else f"{chain(parent)}${r.type}"
        return qualified[r.urn]

    return {urn: f"{_urn_prefix(urn)}{chain(r)}::{r.name}" for urn, r in by_urn.items()}


def _resource(r: Registered, urns: Mapping[str, str], secrets: set[str]) -> dict[str, Any]:
    record = {
        "type": r.type,
        "name": r.name,
        "parent": urns.get(r.parent or "", r.parent),
        "custom": r.custom,
        "protect": r.protect,
        "provider": _provider_urn(r.provider, urns),
        "dependencies": sorted({urns.get(d, d) for d in r.dependencies}),
        "deleteBeforeReplace": r.delete_before_replace,
        "inputs": normalise(r.inputs, secrets),
    }
    if r.ignore_changes:
        record["ignoreChanges"] = list(r.ignore_changes)
    return record


def _provider_urn(reference: str | None, urns: Mapping[str, str]) -> str | None:
    """A provider reference is `URN::ID`; the ID is a mock's invention, the URN is not."""
    if not reference:
        return None
    urn = reference.rsplit("::", 1)[0]
    return urns.get(urn, urn)


def _refuse_duplicates(resources: Iterable[Registered]) -> None:
    counts = Counter(r.urn for r in resources)
    duplicates = sorted(urn for urn, n in counts.items() if n > 1)
    if duplicates:
        listed = "\n".join(f"  - {urn}" for urn in duplicates)
        raise DuplicateUrn(
            f"{len(duplicates)} URN(s) registered more than once; Pulumi refuses a program that "
            f"does this. Give the resources distinct names:\n{listed}"
        )


def _urn_prefix(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::`."""
    stack, project = urn.split("::", 2)[:2]
    return f"{stack}::{project}::"


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _opaque(value: Any) -> Any:
    """Assets, archives, resource references: a stable marker, never a repr with an address."""
    for attribute in ("path", "uri"):
        found = getattr(value, attribute, None)
        if isinstance(found, str):
            return f"[{type(value).__name__} {found}]"
    return f"[{type(value).__name__}]"
