#!/usr/bin/python3
"""Checks Argo Workflow YAML files against Argo's JSON schema (argo/schema.json)."""
import json
import os
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEFINITIONS = json.load(open(os.path.join(HERE, "argo", "schema.json")))["definitions"]
KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")


def check(document):
    kind = document.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not an Argo workflow kind")
    if not str(document.get("apiVersion", "")).startswith("argoproj.io/"):
        raise ValueError("apiVersion must be argoproj.io/v1alpha1")
    schema = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": DEFINITIONS}
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        raise ValueError(f"{'/'.join(map(str, first.path))}: {first.message[:200]} ({len(errors)} errors)")


def main(paths):
    bad = 0
    for path in paths:
        try:
            with open(path) as f:
                documents = [d for d in yaml.safe_load_all(f) if d is not None]
            if not documents:
                raise ValueError("no document")
            for d in documents:
                check(d)
            print(f"ok   {path}")
        except Exception as e:  # one line per file, then the status
            bad += 1
            print(f"FAIL {path}: {type(e).__name__}: {e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
