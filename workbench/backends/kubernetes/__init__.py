"""The Kubernetes backend.

``manifests`` turns a validated spec into plain manifest dicts (no I/O, no clock, no
randomness) and ``policy`` checks manifests for what kubernetes-validate cannot see (Pod
Security *restricted*, quantities, label syntax, GPU rules). Neither imports the
``kubernetes`` client package, which costs about a second to import; only the module that
talks to the API server does. Nothing is imported here, so importing a submodule stays cheap.
"""
