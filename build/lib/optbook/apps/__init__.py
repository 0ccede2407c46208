"""One helper module per Applications page (data made offline, the federated simulation, the language
model, mixed precision) and the benchmark. Built on ``core`` and ``lab``."""
