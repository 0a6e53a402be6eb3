"""CoDIT reproduction: instruction pool -> CoDIT and direct generation -> LoRA SFT -> lm-eval -> report.

Run from the repository root: `snakemake --cores all` (tiny world) or
`snakemake --profile profiles/slurm --configfile config/paper.yaml` (the paper's grid).
"""

import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# The config logic is pure Python in the codit package; make it importable without installing.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from codit.workflow import runlock, slurm_jobs

# One live run per directory, and no `--unlock` after a crash: the locks of a run that was
# killed are removed when no other Snakemake works here (src/codit/workflow/runlock.py). Cluster jobs
# (remote mode) run inside the main run, which holds the lease.
if not (workflow.remote_exec or workflow.subprocess_exec):
    runlock.claim_when_read()
    # Every SLURM job this process submits gets a line in .snakemake/codit-slurm-jobs.jsonl, so
    # that a later run finds the jobs still running if this one dies (slurm_jobs.py).
    slurm_jobs.record_submissions()


# The tiny world is the default; a --configfile replaces it instead of being merged into it
# (Snakemake would otherwise deep-merge the two model and pair tables).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/tinyworld.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/sft.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/judged.smk"
include: "workflow/rules/report.smk"


onstart:
    # Dry runs skip this: a run that executes jobs holds the directory's lease, or stops.
    runlock.claim_for_jobs()
    # SLURM jobs of an earlier run here that still run: wait for them (or cancel them) before
    # submitting anything; after waiting, start again so that the DAG sees their outputs.
    if slurm_jobs.check_earlier_jobs(
        config["slurm"]["earlier_jobs"],
        config["slurm"]["poll_seconds"],
        slurm_executor=not workflow.local_exec,
    ):
        workflow.persistence.unlock()
        slurm_jobs.start_again()
    # Jobs run on this machine fork from a warm interpreter that has imported torch and the
    # rest once (src/codit/workflow/warm.py); cluster jobs start fresh. CODIT_WARM=0 turns it off.
    # Decided here, not at parse time: only now does Snakemake know its executor.
    if workflow.local_exec and not workflow.remote_exec:
        os.environ.setdefault("CODIT_WARM", "1")


rule all:
    default_target: True
    input:
        final_targets(),
    localrule: True
