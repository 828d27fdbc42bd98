"""A Kubernetes API emulator for tests: HTTP on loopback, fake controllers, a process kubelet.

The real ``kubernetes`` client and ``kubectl`` talk to it; CronJobs become Jobs, Jobs become
pods, pods become local processes (``python`` runs this interpreter, mount paths are rewritten
into a per-pod rootfs), and their logs stream back. Use it through the fixtures in :mod:`tests.k8s.fixtures`
(``k8s``, ``k8s_client``, ``kubeconfig``; import them into a conftest.py) or directly::

    from tests.k8s import Emulator, api_client

    with Emulator() as emu:                      # emu.url: http://127.0.0.1:PORT
        core = kubernetes.client.CoreV1Api(api_client(emu))

Test-side controls on :class:`Emulator` (safe to call while requests are in flight):
``set_nodes``, ``add_crd``, ``bad_images``, ``deny``/``denied``, ``inject``/``clear_faults``,
``requests``/``reset_requests``/``count``, ``compact_history``/``history_limit``,
``pids``/``live_pids``/``pod_dir``/``pvc_dir``, ``get``, ``add_controller``, ``image_entrypoints``,
``fire_cronjob`` (a CronJob's next run now; ``cronjobs.clock`` is the CronJob controller's clock),
``probe_scale`` (multiplies probes' delays and periods; the ``fast_probes`` fixture sets 0.1).
Deployments and ReplicaSets roll out as the real controllers do (deployments.py, rollout.py,
replicasets.py); each pod gets a loopback IP of its own and is probed over HTTP (probes.py);
Services get Endpoints/EndpointSlices of their pods and the API server's service proxy
(services.py, proxy.py); HPAs and PDBs are stored (apps.py); KServe's InferenceService exists
only after :func:`tests.k8s.kserve.install_kserve`, and metrics.k8s.io (PodMetrics and NodeMetrics
from the pods' real processes, as metrics-server serves them) only after
:func:`tests.k8s.metrics.install_metrics`. Builders and waits for tests:
:mod:`tests.k8s.helpers`, and :mod:`tests.k8s.webapp` for Deployments and Services.
"""

from .emulator import Emulator
from .fixtures import api_client, run_kubectl, write_kubeconfig

__all__ = ["Emulator", "api_client", "run_kubectl", "write_kubeconfig"]
