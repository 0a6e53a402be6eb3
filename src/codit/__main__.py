"""`python -m codit` is the same as the `codit` command; `python -m codit --warm-server KEY`
is how `codit` starts a warm server (codit.workflow.warm), whose forked jobs then run here."""

import sys

from codit.cli import main, run
from codit.workflow import warm

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == warm.SERVER_FLAG:
        if warm.serve_until_job(sys.argv[2]):
            run(sys.argv[1:])  # a forked job: the client's command line
    else:
        main()
