"""What runs inside a workload's process or pod: the supervisor and the code runners.

Everything here imports only the core (``workbench.store``, ``workbench.errors``) and the
standard library (plus cloudpickle in the runners), so it stays small and ships in images.
"""

#: A file in the run directory where a runtime leaves the one-line reason the supervisor records
#: (why a Dask cluster stopped, which rank or cell failed).
FINAL_MESSAGE = "final_message"
#: where a pod or train workload's outputs are published (``<--output>/<workload id>``)
OUTPUT_LOCATION_ENV = "WORKBENCH_OUTPUT_LOCATION"
