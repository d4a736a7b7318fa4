"""Tools run by hand, not by `dvc repro`: the benchmark, aux cross-validation, the training
profiler and the pull-request comment. Each is `python -m emoji_ae.tools.<name>`."""
