"""What every benchmark scenario shares, so a scenario module only says what it measures.

``config`` (addresses, CPUs, apps), ``processes`` (servers and Redis as pinned
subprocesses), ``cores`` (CPU pinning and noise), ``loadgen`` (the Node load generator),
``knee`` (the rate search), ``results`` (pass criteria and tables), ``context`` (one run's
state and fixtures), ``compare`` (Streamzy against the baseline, point by point) and
``versions`` (the header line).
"""
