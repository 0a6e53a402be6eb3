"""The provenance block every result carries: settings, versions, command and the machine."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from codit.workflow.provenance import KERNEL_FLAGS, cpu_description, provenance


def test_every_result_names_the_machine_it_was_computed_on():
    block = provenance({"seed": 1})
    assert block["settings"] == {"seed": 1} and block["versions"]["torch"] == torch.__version__
    machine = block["machine"]
    cpu = machine["cpu"]
    assert cpu["model"] and cpu["cores"] >= 1 and set(cpu["kernel_flags"]) <= set(KERNEL_FLAGS)
    assert machine["torch"]["version"] == torch.__version__
    assert machine["torch"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["torch"]["gpus"] == [
        torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
    ]
    assert json.loads(json.dumps(block)) == block  # written as JSON beside every result
    assert provenance({"seed": 1}) == block  # nothing in it varies between calls


def test_a_process_without_torch_does_not_import_it_for_its_provenance():
    """The judge server and the fetch rules never import torch; provenance leaves it so."""
    code = (
        "import sys, json; from codit.workflow.provenance import provenance; "
        "block = provenance({}); print(json.dumps(['torch' in sys.modules, 'torch' in "
        "block['machine']]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(result.stdout) == [False, False], result.stderr
    assert cpu_description()["architecture"]
