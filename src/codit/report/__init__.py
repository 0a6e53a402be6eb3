"""The report: tidy tables, statistics, verdicts, figures and `codit report`."""
