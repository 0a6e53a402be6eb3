"""The workflow's glue and what every stage shares: typed settings, provenance and atomic
files, config checks, names, the job list, run locks and the warm worker."""
