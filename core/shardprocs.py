"""Shards of a batch in forked worker processes, each with its own interpreter and GIL.

``Sequential`` splits a large batch into one shard of samples per thread
(``core.parallel.run_shards``). On threads the shards share one GIL: every NumPy call
releases it and must win it back from the partner, which holds it through its Python code
and small operations (``benchmarks/experiments/shard_contention.py`` measured a shard step
1.2-1.4x slower beside a partner thread, 1.05-1.2x beside a partner process). A ``Crew``
runs shards 1..k-1 in ``k - 1`` processes forked from the model's own process; the calling
thread runs shard 0, as with threads. Linux only (``available``); elsewhere, in a process
that has loaded JAX, PyTorch or TensorFlow (``wanted``), when ``set_shard_processes(False)``
or ``NUMPY_CNN_SHARDS=threads`` asks for it, and for a batch whose targets do not fit the
workers' slots, the shards run on threads. Both give the same numbers up to float32
rounding: each shard runs the same operations, but NumPy's vectorized sums can round
differently for buffers at other addresses.

Everything the processes exchange lies in one anonymous shared memory mapping (``Arena``),
created before the fork:

- **the model's weights.** When the crew starts, every weight array is copied into the
  arena and its layer's ``params`` entry is pointed at the copy, in the parent and therefore
  in the children. The optimizer updates the weights in place, so the children read the
  new values with no copy. A weight the parent replaces by a new array (``set_weights``,
  the batch-norm moving statistics) is copied into its slot before the next batch.
- **per worker**, the rows of its shard (inputs, targets, sample weights), its outputs,
  its parameter gradients, and the two slots of ``allreduce`` (batch normalization's sums).

Messages are short JSON objects with a length prefix on a Unix socket pair per worker:
never pickles. A worker only ever computes a shard and answers; it never writes the
weights, and batch-norm statistics are updated by shard 0 (``parallel.is_first_shard``) in
the parent.

The crew stays up while the model's layers, their weight shapes, the loss and the batch
sizes stay the same (``Crew.key``); a change, a failed batch or the model's collection
stops it, and the next sharded batch starts a new one. A worker that dies (killed, out of
memory) fails the batch with an error that says so, and the crew is replaced.
"""
import builtins
import json
import math
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
import warnings
import weakref

import numpy as np

from . import exceptions, parallel

_LENGTH = struct.Struct("<I")
_ALIGN = 64
#: bytes of each worker's ``allreduce`` part and result slots (batch normalization's sums
#: are two numbers per channel)
ALLREDUCE_BYTES = 4 << 20
#: seconds ``close`` waits for a worker to leave after asking it to stop
STOP_WAIT = 2.0
#: seconds a process of a crew polls its socket for a message of the batch in progress before
#: it blocks in ``recv``, as OpenMP runtimes spin before they sleep: the parent waiting for
#: the workers' answers and batch-norm parts, a worker waiting for a sum. Waking a blocked
#: process took 0.25-0.3 ms on this 2-core VM (a sleeping virtual CPU), 0.16 ms polling; a
#: LeNet-5 predict at two threads (3 ms a shard) took 3.9 ms against 4.1-4.2 (two
#: alternating runs). A worker waiting for the next batch polls only when its batches come
#: back to back (``IDLE_SPIN_SECONDS``): polling there always, for this long, saved a little
#: more on one model (0.09 ms against 0.16 to wake the worker), but two models predicting by
#: turns then ran 2x slower, each one's workers polling on the cores the other needed.
SPIN_SECONDS = 0.002
#: seconds a worker polls for the next batch after answering one, when its crew's batches come
#: back to back (the batch began less than this after the one before ended: ``predict`` called
#: in a loop, ``fit``'s steps where the update and the next batch take less); otherwise it
#: sleeps at once. The parent sees only its own crew: two processes side by side, each with
#: back-to-back batches, poll up to this long per batch on each other's cores (the README asks
#: for ``NUMPY_CNN_THREADS=1`` in each of several processes, which starts no crew). Waking a
#: sleeping worker cost the parent 56 us in ``send`` and the worker about 0.1 ms more before it
#: started: a LeNet-5 predict of 64 images at two threads took 1.54-1.56 ms polling against
#: 1.64-1.76 asleep, HAR's 1.74-1.76 against 1.81-1.95, Conv3D 32^3's 3.37-3.38 against
#: 3.41-3.62 (separate processes by turns; training steps within the spread). Two models
#: predicting by turns do not poll, each one's batches a whole batch of the other's apart:
#: 3.45-3.48 ms for the pair against 3.39-3.55 before
IDLE_SPIN_SECONDS = 0.0005

_mode = {"processes": None}
_live = weakref.WeakSet()  # this process's crews: a new worker closes its copies of their sockets
_fork_state = {"hook": False, "forking_worker": False}


def _after_fork_in_child():
    """In any process forked from one with crews, except the crews' own workers: every crew's
    weights become private copies (the shared ones would let the child's training write into
    the parent's model, and the parent's into the child's), and its sockets are closed (the
    parent's workers then see their parent end when it does)."""
    if _fork_state["forking_worker"]:
        return
    for crew in list(_live):
        crew.disown()


def available():
    """Whether shards can run in forked processes here (Linux, ``os.fork``)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def set_shard_processes(enabled):
    """Run the shards of a batch in forked worker processes (``True``) or on threads only
    (``False``); ``None`` goes back to the default (``wanted``). The environment variable
    ``NUMPY_CNN_SHARDS`` (``processes`` or ``threads``) sets the default."""
    if enabled is not None and not isinstance(enabled, bool):
        raise exceptions.ConfigError(f"set_shard_processes: expected True, False or None, got {enabled!r}")
    _mode["processes"] = enabled


#: libraries that run thread pools of their own: a process that has loaded one keeps its
#: shards on threads unless processes were asked for (``set_shard_processes(True)`` or
#: ``NUMPY_CNN_SHARDS=processes``), since forking it copies locks their threads may hold
#: (JAX warns at every fork). The workers never call them, but the default stays safe.
THREADED_RUNTIMES = ("jax", "torch", "tensorflow")


def wanted():
    """Whether shards should run in processes: ``set_shard_processes``, else
    ``NUMPY_CNN_SHARDS``, else wherever ``available`` and none of ``THREADED_RUNTIMES`` is
    loaded."""
    enabled = _mode["processes"]
    if enabled is None:
        raw = os.environ.get("NUMPY_CNN_SHARDS", "").strip().lower()
        if raw not in ("", "processes", "threads"):
            raise exceptions.ConfigError(f"NUMPY_CNN_SHARDS must be 'processes' or 'threads', got {raw!r}")
        enabled = raw == "processes" or (raw == "" and not any(name in sys.modules for name in THREADED_RUNTIMES))
    return enabled and available()


# ------------------------------------------------------------------ messages
def _send(sock, message):
    data = json.dumps(message).encode()
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _poll(sock, seconds):
    """Poll ``sock`` until it has data to read or ``seconds`` have passed (``SPIN_SECONDS``);
    a closed socket is left to ``recv``, which raises ``OSError`` on it."""
    if seconds <= 0 or sock.fileno() < 0:
        return
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    end = time.perf_counter() + seconds
    while not poller.poll(0) and time.perf_counter() < end:
        pass


def _spin(shards):
    """How long a process of a batch of ``shards`` shards polls (``SPIN_SECONDS``): not at all
    when there are more shards than cores, where a poller would take a core from a shard
    still computing."""
    return SPIN_SECONDS if shards <= parallel.available_cores() else 0.0


def _read_exactly(sock, n):
    chunks, left = [], n
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(sock, spin=0.0):
    """The next message on ``sock``, after polling for it up to ``spin`` seconds."""
    _poll(sock, spin)
    n, = _LENGTH.unpack(_read_exactly(sock, _LENGTH.size))
    return json.loads(_read_exactly(sock, n))


def _aligned(n):
    return -(-n // _ALIGN) * _ALIGN


class Arena:
    """One anonymous shared mapping, cut into slots by ``reserve`` before the fork; pages
    never written take no memory."""

    def __init__(self):
        self.size = 0
        self.buf = None

    def reserve(self, nbytes):
        offset = self.size
        self.size += _aligned(max(int(nbytes), 1))
        return offset

    def open(self):
        self.buf = mmap.mmap(-1, max(self.size, 1))  # MAP_SHARED | MAP_ANONYMOUS
        return self

    def view(self, offset, shape, dtype):
        return np.ndarray(tuple(shape), np.dtype(dtype), buffer=self.buf, offset=offset)

    def put(self, offset, capacity, array):
        """Copy ``array`` into the slot at ``offset`` (``capacity`` bytes); its description."""
        array = np.asarray(array)
        if array.nbytes > capacity:
            raise SlotTooSmall(f"{array.nbytes} bytes for a slot of {capacity}")
        np.copyto(self.view(offset, array.shape, array.dtype), array)
        return [offset, list(array.shape), array.dtype.str]

    def get(self, spec):
        offset, shape, dtype = spec
        return self.view(offset, shape, dtype)


class SlotTooSmall(Exception):
    """An array larger than the arena slot meant for it (a target wider than the model's
    output): ``Sequential`` then runs the batch on threads."""


class _Worker:
    """The parent's handle on one worker: its process id, socket and arena slots."""

    def __init__(self, index, arena, slots):
        self.index = index
        self.pid = None
        self.sock = None
        self.slots = slots  # name -> (offset, capacity)
        self.arena = arena

    def put(self, name, array):
        offset, capacity = self.slots[name]
        return self.arena.put(offset, capacity, array)


def _weight_slots(layers):
    """``[(layer index, name, shape, dtype)]`` of every weight, in a fixed order."""
    return [(i, name, p.shape, p.dtype.str) for i, layer in enumerate(layers) for name, p in layer.params.items()]


class Crew:
    """The worker processes for the shards after the first of one model's batches (see the
    module docstring), started by ``Crew.start``."""

    def __init__(self):
        self.workers = []
        self.active = []  # the workers of the batch being run
        self.closed = False
        self.last_end = -math.inf  # when the last batch's answers were in (``IDLE_SPIN_SECONDS``)

    # ------------------------------------------------------------ set-up
    @staticmethod
    def key(model):
        """What a crew depends on: the model's builds and compiles (``_crew_generation``: the
        loss, the metrics, the layers' shapes), the layers themselves (identity, their trainable
        weights, nested layers' included, weight shapes and dtypes). The workers hold the layers as they were at the fork: a
        layer attribute changed in place afterwards reaches them at the next ``compile``, as
        in Keras. (How many shards and rows a crew serves is ``fits``'s question.)"""
        return (model._crew_generation, tuple(id(layer) for layer in model.layers),
                tuple(tuple(layer.trainable_names()) for layer in model.layers), tuple(_weight_slots(model.layers)))

    def fits(self, shards, rows):
        """Whether this crew can run a batch of ``shards`` shards of at most ``rows`` samples:
        no more workers than it has, no larger shard than its slots hold (the last, smaller
        batch of an epoch uses the same crew)."""
        return shards - 1 <= len(self.workers) and rows <= self.rows

    @classmethod
    def start(cls, model, key, shards, rows, row_bytes):
        """Fork ``shards - 1`` workers for ``model``, for shards of up to ``rows`` samples;
        ``row_bytes``: ``{"x": ..., "y": ..., "sw": ..., "out": ...}`` bytes one sample needs."""
        crew = cls()
        crew.key = key
        crew.rows = rows
        crew.owner = os.getpid()
        crew.layers = len(model.layers)
        arena = crew.arena = Arena()
        crew.weights = [(i, name, arena.reserve(np.prod(shape) * np.dtype(dtype).itemsize), shape, dtype)
                        for i, name, shape, dtype in _weight_slots(model.layers)]
        for index in range(1, shards):
            slots = {name: (arena.reserve(rows * size), rows * size) for name, size in row_bytes.items()}
            slots.update({f"grad/{i}/{name}": (arena.reserve(8 * np.prod(shape)), 8 * int(np.prod(shape)))
                          for i, name, _, shape, dtype in crew.weights})  # a gradient may be wider than its weight
            slots["part"] = (arena.reserve(ALLREDUCE_BYTES), ALLREDUCE_BYTES)
            slots["sum"] = (arena.reserve(ALLREDUCE_BYTES), ALLREDUCE_BYTES)
            crew.workers.append(_Worker(index, arena, slots))
        arena.open()
        crew.views, crew.tables = {}, []
        for i, name, offset, shape, dtype in crew.weights:  # the weights move into the arena
            view = arena.view(offset, shape, dtype)
            np.copyto(view, model.layers[i].params[name])
            model.layers[i].params[name] = view
            crew.views[i, name] = view
            crew.tables.append((model.layers[i].params, name, view))
        model.reset_inference()
        parallel.reset_after_fork()  # a child forked during a pass must not inherit pass_lock held
        if not _fork_state["hook"]:
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_state["hook"] = True
        try:
            for worker in crew.workers:
                crew._fork(model, worker)
        except BaseException:
            crew.close(kill=True)
            raise
        _live.add(crew)
        crew._finalizer = weakref.finalize(crew, _stop_workers, crew.owner, [(w.pid, w.sock) for w in crew.workers],
                                           False)
        return crew

    def _fork(self, model, worker):
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a process with threads: a child that takes a
            # lock another thread held at the fork waits for ever. The worker takes none of
            # them: it runs only NumPy and the engine's layers (the pool of core.parallel is
            # reset in the child), and leaves through os._exit.
            warnings.simplefilter("ignore", DeprecationWarning)
            _fork_state["forking_worker"] = True  # the at-fork hook leaves a worker's weights shared
            try:
                pid = os.fork()
            finally:
                _fork_state["forking_worker"] = False
        if pid == 0:  # the child
            code = 1
            try:
                parent_end.close()
                for crew in [self, *_live]:  # only the parent may talk to its workers
                    for other in crew.workers:
                        if other.sock is not None:
                            other.sock.close()
                _serve(model, worker.index, child_end, self.arena, worker.slots)
                code = 0
            except BaseException:  # the parent reports the exit; the reason goes to stderr
                traceback.print_exc()
            finally:
                os._exit(code)
        child_end.close()
        worker.pid, worker.sock = pid, parent_end

    # ------------------------------------------------------------ one batch
    def sync_weights(self, model):
        """Copy into the arena any weight the model replaced by a new array since the last batch
        (the workers' weights keep their identity, so their inference plans are told by a new
        ``_weights_version``)."""
        replaced = False
        for (i, name), view in self.views.items():
            current = model.layers[i].params[name]
            if current is not view:
                np.copyto(view, current)
                model.layers[i].params[name] = view
                replaced = True
        if replaced:
            model.reset_inference()

    def run(self, model, message, ranges, inputs, own):
        """Run one sharded batch: ``message`` (the operation and its settings) and each
        worker's rows of ``inputs`` (``{"x": x, "y": y, "sw": sw}``, ``None`` entries left
        out) go to the workers; ``own(rows)`` runs shard 0 here. Returns ``[own's result]``
        followed by each worker's answer (``_answer``)."""
        if self.closed:
            raise RuntimeError("this crew of shard processes was stopped")
        workers = self.active = self.workers[:len(ranges) - 1]
        for worker, (a, b) in zip(workers, ranges[1:]):
            for name, arr in inputs.items():
                if arr is not None and arr[a:b].nbytes > worker.slots[name][1]:
                    raise SlotTooSmall(f"{name}: {arr[a:b].nbytes} bytes for a slot of {worker.slots[name][1]}")
        self.sync_weights(model)
        now = time.perf_counter()
        linger = IDLE_SPIN_SECONDS if now - self.last_end < IDLE_SPIN_SECONDS and _spin(len(ranges)) else 0.0
        message = dict(message, version=model._weights_version, ranges=[list(r) for r in ranges], linger=linger)
        group = _ParentGroup(self, ranges)
        try:
            for worker, (a, b) in zip(workers, ranges[1:]):
                specs = {name: worker.put(name, arr[a:b]) for name, arr in inputs.items() if arr is not None}
                try:
                    _send(worker.sock, dict(message, rows=[a, b], inputs=specs))
                except OSError:
                    raise self._ended(worker, ranges) from None
            with parallel.membership(group, 0), parallel.one_blas_thread(), parallel.inside():
                first = own(ranges[0])
            answers = [first] + [self._answer(worker, ranges) for worker in workers]
            self.last_end = time.perf_counter()
            return answers
        except SlotTooSmall as exc:  # an allreduce sum past its slot, once the shards had started:
            self.close(kill=True)  # not to be run again on threads (shard 0 may have changed state)
            raise exceptions.CNNError(f"a sum of the shards is larger than its slot in the shard processes "
                                      f"({exc}); set NUMPY_CNN_SHARDS=threads for this model") from None
        except BaseException:
            self.close(kill=True)  # workers may wait in allreduce: a new crew for the next batch
            raise

    def _receive(self, worker, ranges):
        try:
            return _recv(worker.sock, _spin(len(ranges)))
        except (EOFError, OSError):
            raise self._ended(worker, ranges) from None

    @staticmethod
    def _ended(worker, ranges):
        a, b = ranges[worker.index]
        status = _reap(worker.pid)
        if status != "still running":
            worker.pid = None  # reaped: its number may be another process's by now
        return exceptions.CNNError(f"the shard process for rows {a}:{b} of the batch ended unexpectedly "
                                   f"({status}); the batch was not applied")

    def _answer(self, worker, ranges):
        message = self._receive(worker, ranges)
        if message["op"] == "error":
            raise _rebuilt_error(message, ranges[worker.index])
        if message["op"] != "done":
            raise exceptions.CNNError(f"shard process {worker.index}: expected its result, got {message['op']!r}")
        arena = self.arena
        out = None if message["out"] is None else arena.get(message["out"])
        grads = None
        if message["grads"] is not None:
            grads = [{} for _ in range(self.layers)]
            for i, name, spec in message["grads"]:
                grads[i][name] = arena.get(spec)
        return out, message["value"], grads

    def allreduce(self, ranges, part):
        """Shard 0's ``allreduce``: ``part`` plus each worker's, in shard order."""
        total = np.array(part, copy=True)
        for worker in self.active:
            message = self._receive(worker, ranges)
            if message["op"] == "error":
                raise _rebuilt_error(message, ranges[worker.index])
            if message["op"] != "allreduce":
                raise exceptions.CNNError(f"shard process {worker.index} finished without adding its part "
                                          "(the shards called allreduce a different number of times)")
            total += self.arena.get(message["part"])
        for worker in self.active:
            spec = worker.put("sum", total)
            _send(worker.sock, {"op": "sum", "sum": spec})
        return total

    def disown(self):
        """In a process forked from the crew's owner: point the model's weights at private
        copies of the shared ones, close the inherited sockets, and never use the crew."""
        for table, name, view in self.tables:
            if table.get(name) is view:
                table[name] = np.array(view, copy=True)
        for worker in self.workers:
            if worker.sock is not None:
                worker.sock.close()
                worker.sock = None
        self.closed = True
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()

    def mine(self):
        """Whether this process started the crew (a process forked from it, say a Luigi or
        ``multiprocessing`` worker, inherits the model but not the right to its workers)."""
        return self.owner == os.getpid()

    def close(self, kill=False):
        """Stop the workers (at once with ``kill``); the weights stay in the arena."""
        if self.closed:
            return
        self.closed = True
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        _stop_workers(self.owner, [(w.pid, w.sock) for w in self.workers], kill)


class _ParentGroup:
    """Shard 0's view of a sharded batch run with a ``Crew`` (the duck type of
    ``parallel.ShardGroup``)."""

    #: its partner shards run in processes of their own (``parallel.beside_partners``)
    processes = True

    def __init__(self, crew, ranges):
        self.crew = crew
        self.ranges = [tuple(r) for r in ranges]
        self.total = self.ranges[-1][1] - self.ranges[0][0]

    def allreduce(self, index, part):
        return self.crew.allreduce(self.ranges, part)

    def abort(self):
        pass  # run() stops the whole crew


class _WorkerGroup:
    """A worker's view of its sharded batch: ``allreduce`` asks the parent for the sum."""

    processes = True

    def __init__(self, sock, arena, slots, ranges):
        self.sock, self.arena, self.slots = sock, arena, slots
        self.ranges = [tuple(r) for r in ranges]
        self.total = self.ranges[-1][1] - self.ranges[0][0]

    def allreduce(self, index, part):
        offset, capacity = self.slots["part"]
        _send(self.sock, {"op": "allreduce", "part": self.arena.put(offset, capacity, part)})
        message = _recv(self.sock, _spin(len(self.ranges)))
        if message["op"] != "sum":
            raise exceptions.CNNError(f"expected the sum of allreduce, got {message['op']!r}")
        return np.array(self.arena.get(message["sum"]), copy=True)

    def abort(self):
        pass


def _serve(model, index, sock, arena, slots):
    """A worker's life: answer the parent's messages until it says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    model._crew = None  # the parent's
    # Buffers of its own rather than the parent's, shared copy-on-write since the fork: a fault
    # on a shared huge page leaves 4 KB pages behind, and the parent's buffers stay its own
    # (paired A/B, two threads: training 2-3 % faster on LeNet-5 and the Conv3D cases).
    model.workspace.clear()
    for extra in model.__dict__.get("_shard_workspaces", ()):
        extra.clear()
    model._inference = None
    linger = 0.0
    with parallel.one_blas_thread():
        while True:
            try:
                message = _recv(sock, linger)  # between batches: asleep unless they come back to back
            except (EOFError, OSError):
                return
            if message["op"] == "stop":
                return
            linger = message.get("linger", 0.0)
            try:
                reply = _compute(model, index, sock, arena, slots, message)
            except Exception as exc:  # the parent raises it, with the rows it came from
                reply = {"op": "error", "type": type(exc).__name__, "message": str(exc)}
            _send(sock, reply)


def _compute(model, index, sock, arena, slots, message):
    inputs = {name: arena.get(spec) for name, spec in message["inputs"].items()}
    model._weights_version = message["version"]
    group = _WorkerGroup(sock, arena, slots, message["ranges"])
    ws = model.workspace
    ws.reclaim()
    with parallel.membership(group, index), parallel.inside():
        if message["op"] == "infer":
            out, value, grads = model._inference_plan()(inputs["x"], ws), None, None
        else:
            training = message["op"] == "train"
            a, b = message["rows"]
            out, value, grads = model._shard_part(inputs["x"], inputs["y"], inputs.get("sw"), (b - a) / group.total,
                                                  training, message["step"], message["down_to"], ws)
    reply = {"op": "done", "value": None if value is None else float(value), "out": None, "grads": None}
    if out is not None:
        offset, capacity = slots["out"]
        reply["out"] = arena.put(offset, capacity, out)
    if grads is not None:
        keys = []
        for i, layer_grads in enumerate(grads):
            for name, g in layer_grads.items():
                offset, capacity = slots[f"grad/{i}/{name}"]
                keys.append([i, name, arena.put(offset, capacity, g)])
        reply["grads"] = keys
    return reply


def _rebuilt_error(message, rows):
    """The worker's exception, raised again in the parent with the rows it came from."""
    a, b = rows
    text = f"in the shard process for rows {a}:{b} of the batch: {message['message']}"
    cls = getattr(exceptions, message["type"], None) or getattr(builtins, message["type"], None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(text)
        except Exception:
            pass
    return exceptions.CNNError(f"{message['type']}: {text}")


def _reap(pid):
    """How a worker ended, in words, once it has (waits up to ``STOP_WAIT`` seconds)."""
    try:
        for _ in range(int(STOP_WAIT * 100)):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if os.WIFSIGNALED(status):
                    return f"killed by signal {os.WTERMSIG(status)}"
                return f"exit code {os.WEXITSTATUS(status)}"
            time.sleep(0.01)
    except ChildProcessError:
        return "already reaped"
    return "still running"


def _stop_workers(owner, handles, kill):
    """Ask each worker to stop (or kill it), close the sockets and reap the processes; only in
    the process that started them (``owner``)."""
    if os.getpid() != owner:
        return
    for pid, sock in handles:
        if sock is None or pid is None:
            continue
        try:
            if kill:
                os.kill(pid, signal.SIGKILL)
            else:
                _send(sock, {"op": "stop"})
        except OSError:
            pass
    for pid, sock in handles:
        if sock is not None:
            sock.close()
        if pid is None:
            continue
        if _reap(pid) == "still running":
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (OSError, ChildProcessError):
                pass


def row_bytes(model):
    """Bytes one sample takes in each of a worker's row slots (8-byte elements, the widest
    the engine computes in): its input, its target (no larger than the output), its sample
    weight and its output."""
    out = math.prod(model.layers[-1].output_shape)
    return {"x": 8 * math.prod(model._input_shape), "y": 8 * max(out, 1), "sw": 8, "out": 8 * out}


def worker_usage():
    """``(cpu_seconds, private_kb)`` summed over the live workers of this process's crews: the
    CPU time they have used (user + system) and the memory only they hold (private pages, from
    ``/proc/PID/smaps_rollup``: the pages they share with this process through the fork or the
    arena are this process's own figure). What a benchmark adds to its own process's figures
    so that work done in the workers is not left out. ``(0.0, 0)`` with no workers."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, private = 0.0, 0
    for crew in list(_live):
        if crew.closed or not crew.mine():
            continue
        for worker in crew.workers:
            try:
                with open(f"/proc/{worker.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
                with open(f"/proc/{worker.pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith(("Private_Clean:", "Private_Dirty:")):
                            private += int(line.split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return cpu, private
