#!/usr/bin/python3
"""Checks Kubeflow Pipelines v2 IR YAML files strictly against kfp/pipeline_spec.proto."""
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kfp")
GENERATED = tempfile.mkdtemp(prefix="kiln-kfp-proto-")
subprocess.run(["protoc", f"-I{HERE}", "-I/usr/include", f"--python_out={GENERATED}", "pipeline_spec.proto",
                "google/rpc/status.proto"], check=True, cwd=HERE)
sys.path.insert(0, GENERATED)
from google.protobuf import json_format  # noqa: E402
import pipeline_spec_pb2 as ps  # noqa: E402


def check_dag(where, dag, components):
    for name, task in dag.tasks.items():
        if task.component_ref.name not in components:
            raise ValueError(f"{where} task {name}: component {task.component_ref.name} is not defined")
        for upstream in task.dependent_tasks:
            if upstream not in dag.tasks:
                raise ValueError(f"{where} task {name}: depends on {upstream}, not a task of its DAG")


def check(path):
    with open(path) as f:
        documents = [d for d in yaml.safe_load_all(f) if d is not None]
    if not documents:
        raise ValueError("no document")
    spec = ps.PipelineSpec()
    json_format.ParseDict(documents[0], spec, ignore_unknown_fields=False)
    if not spec.pipeline_info.name:
        raise ValueError("pipelineInfo.name is missing")
    if not spec.root.HasField("dag"):
        raise ValueError("root.dag is missing")
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    for name, component in spec.components.items():
        if component.WhichOneof("implementation") == "executor_label":
            if component.executor_label not in executors:
                raise ValueError(f"component {name}: executor {component.executor_label} is not in deploymentSpec")
        elif component.HasField("dag"):
            check_dag(name, component.dag, spec.components)
    check_dag("root", spec.root.dag, spec.components)
    for extra in documents[1:]:
        json_format.ParseDict(extra, ps.PlatformSpec(), ignore_unknown_fields=False)
    return spec


def main(paths):
    bad = 0
    for path in paths:
        try:
            spec = check(path)
            print(f"ok   {path}: {spec.pipeline_info.name}, {len(spec.components)} components")
        except Exception as e:  # one line per file, then the status
            bad += 1
            print(f"FAIL {path}: {type(e).__name__}: {str(e)[:300]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
