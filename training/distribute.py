"""`--strategy`: one device (default), MirroredStrategy over this machine's devices, or MultiWorkerMirroredStrategy
over the machines TF_CONFIG names. The global batch (--batch-size) is cut into equal slices, one per replica."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

STRATEGIES = ("default", "mirrored", "multiworker")
# How long a worker may go without a heartbeat before TensorFlow's coordination service declares it dead
# and every worker fails with "UNAVAILABLE: Task /job:worker/replica:0/task:0 heartbeat timeout". The
# default (10 s) was missed once on this 2-core machine under load (two workers tracing their first step
# beside another training run: issue 25); a dead worker still ends the run, only up to this much later.
HEARTBEAT_TIMEOUT_S = 300


class StrategyError(Exception):
    """A strategy that cannot run as configured; the message says what to change."""


@dataclass
class Placement:
    """Where a run trains: the tf.distribute strategy (None: one device, no tf.distribute), its replicas, and
    whether this process is the one that writes (checkpoints, bundle, install)."""

    name: str
    strategy: object | None
    replicas: int
    chief: bool
    where: str  # one line for the log: devices or workers

    def scope(self):
        import contextlib

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def read_tf_config(environ=os.environ) -> dict:
    """TF_CONFIG -> its dict, checked enough that a typo is one line, not a gRPC error minutes later."""
    raw = environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise StrategyError("--strategy multiworker needs TF_CONFIG, e.g. "
                            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}} '
                            "(the same cluster on every machine, each its own index)")
    try:
        conf = json.loads(raw)
        workers = list(conf["cluster"].get("chief", [])) + list(conf["cluster"]["worker"])
        kind, index = conf["task"]["type"], int(conf["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise StrategyError(f"TF_CONFIG is not of the form "
                            '{"cluster": {"worker": [HOST:PORT, ...]}, "task": {"type": "worker", "index": N}}: '
                            f"{raw[:200]!r}") from None
    if kind not in ("worker", "chief") or not 0 <= index < len(conf["cluster"].get(kind, [])):
        raise StrategyError(f"TF_CONFIG: task {kind!r} {index} is not in its cluster {conf['cluster']}")
    if not workers:
        raise StrategyError("TF_CONFIG: the cluster names no worker")
    return conf


def place(name: str, global_batch: int) -> Placement:
    """Create the strategy `name` (before any other TensorFlow call: MultiWorkerMirroredStrategy requires it)."""
    if name == "default":
        return Placement("default", None, 1, True, "one device")
    if name == "multiworker":
        conf = read_tf_config()
    import tensorflow as tf

    if name == "mirrored":
        # MirroredStrategy() alone takes every GPU, or one CPU device when there is none; logical CPU devices
        # (tf.config.set_logical_device_configuration) are replicas too, which is how the tests run it.
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
                  [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        placement = Placement(name, strategy, strategy.num_replicas_in_sync, True, ", ".join(devices))
    elif name == "multiworker":
        patient_coordination(conf)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = conf["task"]
        chief = task["type"] == "chief" or ("chief" not in conf["cluster"] and int(task["index"]) == 0)
        n = len(conf["cluster"].get("chief", [])) + len(conf["cluster"]["worker"])
        placement = Placement(name, strategy, strategy.num_replicas_in_sync, chief,
                              f"{n} workers, this one {task['type']} {task['index']}{' (chief: writes the outputs)' if chief else ''}")
    else:
        raise StrategyError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}")
    if global_batch % placement.replicas:
        raise StrategyError(f"--batch-size {global_batch} does not split evenly across {placement.replicas} replicas "
                            f"({placement.where}); use a multiple of {placement.replicas}")
    return placement


def patient_coordination(conf: dict) -> None:
    """Configure the coordination service as MultiWorkerMirroredStrategy would, with HEARTBEAT_TIMEOUT_S.

    The strategy configures it only when nothing did before, and offers no option for the heartbeat; this is
    its own call (tensorflow/python/distribute/collective_all_reduce_strategy.py, TF 2.21) with the timeout.
    Call before the strategy is made."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context
    from tensorflow.python.training.server_lib import ClusterSpec

    if conf["task"]["type"] not in ("chief", "worker") or context.context().coordination_service is not None:
        return
    spec = multi_worker_util.normalize_cluster_spec(ClusterSpec(conf["cluster"]))
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec), coordinated_jobs=jobs,
        heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000)


def distributed_steps(placement: Placement, model, optimizer, loss_fn, clipnorm: float, global_batch: int):
    """-> (train_step(x, y) -> summed loss of the global batch, agree(value) -> the workers' mean of value).

    x, y: the global batch (global_batch, window), the same on every worker (windows are cut from the seed);
    replica r trains on rows [r * per, (r + 1) * per). Each replica's loss is divided by the global token count,
    so the summed gradient is the single-device gradient of the same batch."""
    import tensorflow as tf

    strategy, n = placement.strategy, placement.replicas
    per = global_batch // n

    def clipped_parts(grads):
        """This replica's gradients, clipped as Keras' clipnorm clips the whole batch's, for Keras to sum.

        Keras sums the replicas' gradients after its own clipnorm, which would clip each replica's part alone,
        so the optimizer here has none and this does it. A dense gradient is summed here, clipped, and handed
        over as 1/n (Keras' sum of the n identical parts restores it: exact for n a power of two, one rounding
        otherwise; the price is a second all-reduce). The embedding's gradient is IndexedSlices, a row per
        token with repeats not summed; Keras clips and applies it as such, and sums replicas by concatenating
        their rows. So its clip takes the norm of all replicas' rows (a summed square per variable) and each
        replica hands over its own rows, which Keras concatenates into exactly the single-device slices."""
        ctx = tf.distribute.get_replica_context()
        dense = [i for i, g in enumerate(grads) if not isinstance(g, tf.IndexedSlices)]
        sparse = [i for i, g in enumerate(grads) if isinstance(g, tf.IndexedSlices)]
        out = list(grads)
        if dense:
            for i, g in zip(dense, ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in dense])):
                out[i] = tf.clip_by_norm(g, clipnorm) / n
        if sparse:
            squares = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.reduce_sum(tf.square(grads[i].values)) for i in sparse])
            for i, sq in zip(sparse, squares):
                g = grads[i]  # as tf.clip_by_norm: t * c / max(||t||, c)
                out[i] = tf.IndexedSlices(g.values * clipnorm / tf.maximum(tf.sqrt(sq), clipnorm), g.indices, g.dense_shape)
        return out

    @tf.function
    def step(x, y):
        def local(ctx, a):
            r = ctx.replica_id_in_sync_group
            return a[r * per:(r + 1) * per]

        xs = strategy.experimental_distribute_values_from_function(lambda ctx: local(ctx, x))
        ys = strategy.experimental_distribute_values_from_function(lambda ctx: local(ctx, y))

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)  # (per, window, vocab)
                total = loss_fn(y, logits)
                loss = total / tf.cast(tf.size(y) * n, tf.float32)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(clipped_parts(grads), model.trainable_variables))
            return total

        totals = strategy.run(replica_step, args=(xs, ys))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, totals, axis=None)

    @tf.function
    def mean(v):
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(lambda: tf.identity(v)), axis=None)

    def agree(value: float) -> float:
        """Every worker gets the same number, so they all stop (or halve the lr) at the same epoch."""
        return float(mean(tf.constant(value, tf.float32)))

    return step, agree
